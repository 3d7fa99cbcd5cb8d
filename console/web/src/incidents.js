// Incidents across the tenant's instances, resolved in place (with variables to set).

import { get, post, stream } from './api.js';
import { h, message, parseObject, when } from './dom.js';

// "Resolve" for an incident, setting the variables of `editor` (a JSON object) first.
export function resolveButton(incident, editor, out) {
  const resolve = async () => {
    try {
      await post('/api/incidents/' + encodeURIComponent(incident.id) + '/resolve', { variables: parseObject(editor.value) });
      message(out, 'Resolve sent.', 'note');
    } catch (error) {
      message(out, error.message);
    }
  };
  return h('button', { class: 'resolve', onclick: resolve }, 'Resolve');
}

// Retries the failed job had left; not a job incident: a dash.
export function retriesText(incident) {
  return incident.retries === null || incident.retries === undefined ? '—' : String(incident.retries);
}

export function incidentsPage(main, user) {
  const status = h('div', { class: 'status' });
  const body = h('tbody', { id: 'incident-rows' });
  main.replaceChildren(h('h1', {}, 'Incidents'), status,
    h('table', { class: 'list' }, h('thead', {}, h('tr', {}, ['Instance', 'Process', 'Element', 'Kind', 'Message', 'Retries', 'Raised', ''].map((t) => h('th', {}, t)))), body));
  async function load() {
    try {
      const { incidents } = await get('/api/incidents');
      body.replaceChildren(...incidents.map((i) => row(i)));
      message(status, incidents.length ? '' : 'No open incidents.', 'note');
    } catch (error) {
      message(status, error.message);
    }
  }
  function row(incident) {
    const editor = h('input', { type: 'text', class: 'vars-editor', placeholder: '{"variable": "value"}' });
    const out = h('span');
    return h('tr', { 'data-incident': incident.id },
      h('td', {}, h('a', { href: '#/instances/' + encodeURIComponent(incident.instance) }, incident.instance)),
      h('td', {}, incident.process_id), h('td', {}, incident.element_id), h('td', {}, incident.kind),
      h('td', { class: 'message' }, incident.message), h('td', { class: 'retries' }, retriesText(incident)), h('td', {}, when(incident.at)),
      h('td', {}, user.role === 'operator' ? [editor, resolveButton(incident, editor, out), out] : ''));
  }
  load();
  let pending = null;
  const source = stream('/api/events', {
    step: (step) => {
      if (pending || !step.types.some((t) => t.startsWith('incident') || t.startsWith('instance-'))) return;
      pending = setTimeout(() => { pending = null; load(); }, 300);
    }
  });
  return () => { source.close(); if (pending) clearTimeout(pending); };
}
