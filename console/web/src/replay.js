// Fold history records into what the diagram shows: tokens, completed path, incidents, counts.

import { h } from './dom.js';

const ROOT = 1;

export function fold(records, upto) {
  const active = new Map(); // ei -> element
  const done = new Set();
  const entered = new Set();
  const counts = {};
  const incidents = new Map(); // ei -> {element, message}
  const variables = [];
  const values = new Map(); // "ei/name" -> {ei, name, value, size, step, known}
  const last = upto === undefined ? records.length - 1 : upto;
  for (let i = 0; i <= last && i < records.length; i++) {
    for (const change of records[i].variables || []) {
      values.set(change.ei + '/' + change.name, {
        ei: change.ei, name: change.name, step: records[i].step, known: change.size === undefined || change.size === null,
        value: change.value === undefined ? null : change.value, size: change.size
      });
    }
    for (const event of records[i].events || []) {
      const el = event.element_id;
      const ei = event.ei;
      switch (event.type) {
        case 'element-activated':
          if (ei === ROOT) break;
          active.set(ei, el);
          entered.add(el);
          counts[el] = (counts[el] || 0) + 1;
          break;
        case 'element-completed':
          active.delete(ei);
          if (ei !== ROOT) done.add(el);
          break;
        case 'element-terminated':
          active.delete(ei);
          break;
        case 'incident-raised':
          incidents.set(ei, { element: el, message: (event.data && event.data.message) || event.type });
          break;
        case 'incident-resolved':
          incidents.delete(ei);
          break;
        case 'instance-completed':
        case 'instance-cancelled':
          active.clear();
          incidents.clear();
          break;
        case 'variables-set':
          variables.push({ step: records[i].step, element: el, names: (event.data && event.data.names) || [] });
          // records written before values were recorded: the names, without values
          if (!records[i].variables) {
            for (const name of (event.data && event.data.names) || []) {
              values.set(ei + '/' + name, { ei, name, step: records[i].step, known: false, value: null, size: null });
            }
          }
          break;
        default:
          break;
      }
    }
  }
  const activeCounts = {};
  for (const el of active.values()) activeCounts[el] = (activeCounts[el] || 0) + 1;
  const incidentMessages = {};
  for (const { element, message } of incidents.values()) {
    (incidentMessages[element] = incidentMessages[element] || []).push(message);
  }
  const state = last >= 0 && records[last] ? records[last].state : 'active';
  const step = last >= 0 && records[last] ? records[last].step : 0;
  return { active: activeCounts, done, entered, counts, incidents: incidentMessages, variables, values: [...values.values()], step, state };
}

// Sequence flows on the completed path: from a completed element to one that was entered.
export function flowsTaken(registry, done, entered) {
  const flows = [];
  for (const element of registry.filter((e) => e.type === 'bpmn:SequenceFlow')) {
    const source = element.businessObject.sourceRef;
    const target = element.businessObject.targetRef;
    if (source && target && done.has(source.id) && entered.has(target.id)) flows.push(element.id);
  }
  return flows;
}

// The variables of a folded view as a table, the ones its last step set highlighted.
export function variablesTable(view) {
  const rows = view.values.map((v) => h('tr', { 'data-name': v.name, 'data-scope': v.ei, class: v.step === view.step ? 'changed' : null },
    h('td', {}, v.ei === 1 ? 'process' : 'scope ' + v.ei), h('td', {}, v.name), h('td', { class: 'value' }, valueText(v)), h('td', {}, 'step ' + v.step)));
  return rows.length
    ? h('table', { class: 'list' }, h('thead', {}, h('tr', {}, ['Scope', 'Name', 'Value', 'Set at'].map((t) => h('th', {}, t)))), h('tbody', {}, rows))
    : h('p', { class: 'note' }, 'No variables yet.');
}

// A recorded value as text: its JSON, or why it is not there.
export function valueText(entry) {
  if (entry.known) return JSON.stringify(entry.value);
  return entry.size ? '(' + entry.size + ' bytes: too large to record)' : '(value not recorded)';
}

export function describe(event) {
  const data = event.data || {};
  const extra = Object.entries(data)
    .filter(([, v]) => v !== null && v !== undefined && v !== '')
    .map(([k, v]) => k + '=' + (Array.isArray(v) ? v.join(',') : typeof v === 'object' ? JSON.stringify(v) : v))
    .join(' ');
  return event.type + (event.element_id ? ' ' + event.element_id : '') + (extra ? ' (' + extra + ')' : '');
}
