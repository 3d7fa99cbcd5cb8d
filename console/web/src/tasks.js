// The user task inbox: filter by assignee and candidate group; claim, unclaim, complete with a
// plain variables editor.

import { get, post, stream } from './api.js';
import { h, json, message, parseObject, when } from './dom.js';

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
    const details = h('details', { open: open.has(task.id) || null, ontoggle: (e) => { if (e.target.open) open.add(task.id); else open.delete(task.id); } },
      h('summary', {}, 'Variables and completion'),
      h('pre', { class: 'vars' }, json(task.variables)),
      canWrite ? [h('label', {}, 'Variables to complete with (JSON object)', editor),
        h('button', { class: 'complete', onclick: () => {
          let variables;
          try { variables = parseObject(editor.value); } catch (error) { message(out, error.message); return; }
          act('complete', { variables });
        } }, 'Complete')] : null);
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
