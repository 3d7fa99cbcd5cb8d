// One instance: the diagram with live tokens, completed path, incidents and counts; variables
// per scope; the history timeline, replayable step by step; cancel, set variables, resolve.

import { get, post, stream } from './api.js';
import { Diagram } from './diagram.js';
import { h, json, message, parseObject, when } from './dom.js';
import { resolveButton, retriesText } from './incidents.js';
import { describe, flowsTaken, fold, variablesTable } from './replay.js';

export function instancePage(main, id, user) {
  const canWrite = user.role === 'operator';
  const title = h('h1', {}, 'Instance ', h('code', {}, id));
  const stateBadge = h('span', { id: 'instance-state', class: 'state' }, '…');
  const facts = h('dl', { class: 'facts', id: 'instance-facts' });
  const status = h('div', { class: 'status', id: 'instance-status' });
  const canvas = h('div', { class: 'canvas', id: 'diagram' });
  const replayBar = h('div', { class: 'replay', id: 'replay' });
  const replayVars = h('div', { class: 'replay-variables', id: 'replay-variables' });
  const scopes = h('div', { id: 'scopes' });
  const incidents = h('div', { id: 'incidents' });
  const timeline = h('ol', { class: 'timeline', id: 'timeline' });
  const actions = h('div', { class: 'actions' });
  main.replaceChildren(
    h('div', { class: 'headline' }, title, stateBadge),
    facts, status, actions, canvas, replayBar, replayVars,
    h('div', { class: 'columns' },
      h('section', {}, h('h2', {}, 'Variables (now)'), scopes, h('h2', {}, 'Incidents'), incidents),
      h('section', {}, h('h2', {}, 'History'), timeline)));

  const diagram = new Diagram(canvas);
  let detail = null;
  const records = [];
  let replayAt = null; // null: live
  let diagramReady = null;

  function paint() {
    if (!detail) return;
    stateBadge.textContent = replayAt === null ? detail.state : records[replayAt].state + ' (step ' + records[replayAt].step + ')';
    stateBadge.className = 'state state-' + (replayAt === null ? detail.state : records[replayAt].state);
    const view = fold(records, replayAt === null ? undefined : replayAt);
    if (replayAt === null) {
      view.active = {};
      for (const el of detail.active_elements) view.active[el.element_id] = (view.active[el.element_id] || 0) + 1;
      view.incidents = {};
      for (const i of detail.incidents) (view.incidents[i.element_id] = view.incidents[i.element_id] || []).push(i.message);
    }
    if (diagram.viewer.getDefinitions()) {
      const flows = flowsTaken(diagram.viewer.get('elementRegistry'), view.done, view.entered);
      const done = new Set([...view.done, ...flows]);
      const current = replayAt === null ? null : currentElement(records[replayAt]);
      diagram.paint({ ...view, done, current });
    }
    for (const row of timeline.children) row.classList.toggle('current', Number(row.dataset.index) === replayAt);
    showReplayVariables(replayAt === null ? null : view);
  }

  // The variables as they were at the replayed step (from the history records), the ones this
  // step set highlighted.
  function showReplayVariables(view) {
    if (!view) { replayVars.replaceChildren(); return; }
    replayVars.replaceChildren(h('h2', {}, 'Variables at step ' + view.step), variablesTable(view));
  }

  function showDetail() {
    facts.replaceChildren(...[
      fact('Process', h('a', { href: '#/processes/' + encodeURIComponent(detail.process_id) + '?version=' + detail.version }, detail.process_id + ' v' + detail.version)),
      fact('Business key', detail.business_key || '—'),
      fact('Started', when(detail.started)),
      fact('Ended', when(detail.ended) || '—'),
      fact('Step', detail.step),
      detail.parent ? fact('Parent', h('a', { href: '#/instances/' + detail.parent }, detail.parent)) : null
    ].filter(Boolean));
    scopes.replaceChildren(...detail.scopes.map((scope) => scopeView(scope)));
    if (!detail.scopes.length) scopes.append(h('p', { class: 'note' }, 'No variables.'));
    incidents.replaceChildren(...detail.incidents.map((incident) => incidentView(incident)));
    if (!detail.incidents.length) incidents.append(h('p', { class: 'note' }, 'No open incidents.'));
    actions.replaceChildren(...[
      canWrite && detail.state === 'active' ? h('button', { id: 'cancel', onclick: cancel }, 'Cancel instance') : null,
      h('button', { id: 'replay-start', onclick: () => startReplay(), disabled: !records.length }, 'Replay history')
    ].filter(Boolean));
  }

  function scopeView(scope) {
    const editor = h('textarea', { rows: 3, class: 'vars-editor', 'data-scope': scope.ei, placeholder: '{"name": "value"}' });
    const out = h('div');
    const save = async () => {
      try {
        await post('/api/instances/' + encodeURIComponent(id) + '/variables', { variables: parseObject(editor.value), scope: scope.ei === 1 ? null : scope.ei });
        message(out, 'Sent: the instance shows the new values after its next step.', 'note');
        editor.value = '';
      } catch (error) {
        message(out, error.message);
      }
    };
    return h('div', { class: 'scope', 'data-scope': scope.ei },
      h('h3', {}, scope.ei === 1 ? 'Process' : scope.element_id + ' (scope ' + scope.ei + ')'),
      h('pre', { class: 'vars' }, json(scope.variables)),
      canWrite && detail.state === 'active' ? h('div', { class: 'set' }, editor, h('button', { class: 'set-variables', onclick: save }, 'Set variables'), out) : null);
  }

  function incidentView(incident) {
    const editor = h('textarea', { rows: 2, class: 'vars-editor', placeholder: 'variables to set, {"amount": 10}' });
    const out = h('div');
    return h('div', { class: 'incident', 'data-incident': incident.id },
      h('p', {}, h('strong', {}, incident.element_id), ' ', h('span', { class: 'kind' }, incident.kind), ': ', incident.message,
        ' ', h('span', { class: 'retries' }, '(retries left: ' + retriesText(incident) + ')')),
      canWrite ? h('div', { class: 'set' }, editor, resolveButton(incident, editor, out), out) : null);
  }

  async function cancel() {
    if (!window.confirm('Cancel instance ' + id + '?')) return;
    try {
      await post('/api/instances/' + encodeURIComponent(id) + '/cancel', {});
    } catch (error) {
      message(status, error.message);
    }
  }

  function addRecord(record) {
    if (records.length && record.step <= records[records.length - 1].step) return;
    const index = records.length;
    records.push(record);
    timeline.append(h('li', { 'data-index': index, 'data-step': record.step, onclick: () => startReplay(index) },
      h('span', { class: 'at' }, when(record.at)), ' ',
      h('strong', {}, 'step ' + record.step), ' ', h('span', { class: 'cmd' }, record.command), ' → ', record.state,
      h('ul', {}, (record.events || []).map((e) => h('li', {}, describe(e))))));
  }

  function startReplay(index) {
    replayAt = index === undefined ? 0 : index;
    const position = h('span', { id: 'replay-position' });
    const show = () => {
      position.textContent = 'step ' + records[replayAt].step + ' of ' + records[records.length - 1].step + ': ' + records[replayAt].command;
      paint();
    };
    replayBar.replaceChildren(
      h('strong', {}, 'Replay '),
      h('button', { id: 'replay-first', onclick: () => { replayAt = 0; show(); } }, 'First'),
      h('button', { id: 'replay-prev', onclick: () => { replayAt = Math.max(0, replayAt - 1); show(); } }, '◀ Step'),
      h('button', { id: 'replay-next', onclick: () => { replayAt = Math.min(records.length - 1, replayAt + 1); show(); } }, 'Step ▶'),
      h('button', { id: 'replay-last', onclick: () => { replayAt = records.length - 1; show(); } }, 'Last'),
      position,
      h('button', { id: 'replay-stop', onclick: () => { replayAt = null; replayBar.replaceChildren(); paint(); } }, 'Back to live'));
    show();
  }

  async function start() {
    try {
      detail = await get('/api/instances/' + encodeURIComponent(id));
      const workflow = await get('/api/processes/' + encodeURIComponent(detail.process_id), { version: detail.version });
      await diagram.show(workflow.source);
      showDetail();
      paint();
    } catch (error) {
      message(status, error.message);
    }
  }
  diagramReady = start();

  let repaint = null;
  const schedule = () => {
    if (repaint) return;
    repaint = requestAnimationFrame(() => { repaint = null; paint(); });
  };
  const source = stream('/api/instances/' + encodeURIComponent(id) + '/live', {
    state: async (next) => {
      await diagramReady;
      detail = next;
      showDetail();
      schedule();
    },
    history: async (record) => {
      await diagramReady;
      addRecord(record);
      const button = document.getElementById('replay-start');
      if (button) button.disabled = false;
      schedule();
    }
  });
  return () => { source.close(); diagram.destroy(); };
}

function fact(label, value) {
  return h('div', {}, h('dt', {}, label), h('dd', {}, value));
}

function currentElement(record) {
  const events = (record.events || []).filter((e) => e.element_id && e.ei !== 1);
  return events.length ? events[events.length - 1].element_id : null;
}
