// The user task inbox: filter by assignee and candidate group; claim, unclaim, complete with a
// plain variables editor.

import { get, post, stream } from './api.js';
import { h, json, message, parseObject, when } from './dom.js';
import { embeddedForm, renderForm } from './forms.js';

const sources = new Map(); // "<process>@<version>" -> BPMN XML

const forms = new Map(); // form id -> schema (the latest deployed)

async function formOf(task) {
  if (task.form_id) {
    if (!forms.has(task.form_id)) forms.set(task.form_id, (await get('/api/forms/' + encodeURIComponent(task.form_id))).schema);
    return forms.get(task.form_id);
  }
  if (!task.form_key) return null;
  const detail = await get('/api/instances/' + encodeURIComponent(task.instance));
  const key = task.process_id + '@' + detail.version;
  if (!sources.has(key)) {
    const workflow = await get('/api/processes/' + encodeURIComponent(task.process_id), { version: detail.version });
    sources.set(key, workflow.source);
  }
  return embeddedForm(sources.get(key), task.form_key);
}

export function tasksPage(main, user, params) {
  const filters = { assignee: params.get('assignee') || '', group: params.get('group') || '' };
  const form = h('form', { class: 'filters', id: 'task-filters' },
    h('label', {}, 'Assignee', h('input', { name: 'assignee', value: filters.assignee })),
    h('label', {}, 'Candidate group', h('input', { name: 'group', value: filters.group, list: 'my-groups' })),
    h('datalist', { id: 'my-groups' }, user.groups.map((g) => h('option', { value: g }))),
    h('button', { type: 'submit' }, 'Filter'),
    h('a', { href: '#/tasks?assignee=' + encodeURIComponent(user.name) }, 'Mine'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    for (const [key, value] of new FormData(form).entries()) if (value) query.set(key, value);
    window.location.hash = '#/tasks' + (query.toString() ? '?' + query : '');
  });
  const status = h('div', { class: 'status' });
  const list = h('div', { id: 'task-list', class: 'tasks' });
  main.replaceChildren(h('h1', {}, 'Tasks'), form, status, list);
  const open = new Set();

  async function load() {
    try {
      const { tasks } = await get('/api/tasks', filters);
      list.replaceChildren(...tasks.map((t) => card(t)));
      message(status, tasks.length ? '' : 'No open tasks.', 'note');
    } catch (error) {
      message(status, error.message);
    }
  }

  function card(task) {
    const out = h('div');
    const editor = h('textarea', { rows: 4, class: 'vars-editor task-variables' }, '{}');
    const act = async (path, body) => {
      try {
        await post('/api/tasks/' + encodeURIComponent(task.id) + '/' + path, body);
        if (path === 'complete') message(out, 'Completed.', 'note');
        load();
      } catch (error) {
        message(out, error.message);
      }
    };
    const canWrite = user.role === 'operator';
    const mine = task.assignee === user.name;
    const formBox = h('div', { class: 'task-form' });
    const plain = h('label', {}, 'Variables to complete with (JSON object)', editor);
    let form = null;
    const complete = async () => {
      let variables;
      if (form) {
        const { data, invalid } = form.submit();
        if (invalid.length) { message(out, 'Check the form: ' + invalid.join(', ')); return; }
        variables = data;
      } else {
        try { variables = parseObject(editor.value); } catch (error) { message(out, error.message); return; }
      }
      act('complete', { variables });
    };
    const details = h('details', { open: open.has(task.id) || null, ontoggle: (e) => { if (e.target.open) open.add(task.id); else open.delete(task.id); } },
      h('summary', {}, task.form_key || task.form_id ? 'Form and completion' : 'Variables and completion'),
      h('pre', { class: 'vars' }, json(task.variables)),
      formBox,
      canWrite ? [plain, h('button', { class: 'complete', onclick: complete }, 'Complete')] : null);
    if (task.form_key || task.form_id) {
      formOf(task).then(async (schema) => {
        if (!schema) {
          formBox.append(h('p', { class: 'note' }, 'Form ' + task.form_key + ' is not embedded in the process: complete with variables.'));
          return;
        }
        plain.hidden = true;
        form = await renderForm(formBox, schema, task.variables);
      }).catch((error) => message(out, error.message));
    }
    return h('article', { class: 'task', 'data-task': task.id },
      h('h3', {}, task.name || task.element_id),
      h('p', { class: 'meta' },
        h('a', { href: '#/instances/' + encodeURIComponent(task.instance) }, task.process_id + ' / ' + task.instance), ' · ',
        'assignee: ', h('span', { class: 'assignee' }, task.assignee || 'nobody'), ' · ',
        'groups: ', task.candidate_groups.join(', ') || '—', ' · created ', when(task.created)),
      canWrite ? h('p', {},
        !task.assignee ? h('button', { class: 'claim', onclick: () => act('claim', {}) }, 'Claim') : null,
        task.assignee ? h('button', { class: 'unclaim', onclick: () => act('unclaim', {}) }, mine ? 'Unclaim' : 'Release') : null) : null,
      details, out);
  }
  load();
  let pending = null;
  const source = stream('/api/events', {
    step: (step) => {
      if (pending || !step.types.some((t) => t.startsWith('user-task') || t.startsWith('instance-'))) return;
      pending = setTimeout(() => { pending = null; load(); }, 300);
    }
  });
  return () => { source.close(); if (pending) clearTimeout(pending); };
}
