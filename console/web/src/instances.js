// The instances list: filters, paging, rows refreshed when the tenant's instances step.

import { get, stream } from './api.js';
import { h, message, when } from './dom.js';

const FIELDS = [
  ['process', 'Process', 'text'],
  ['version', 'Version', 'number'],
  ['business_key', 'Business key', 'text'],
  ['started_after', 'Started after', 'text'],
  ['started_before', 'Started before', 'text']
];

export function instancesPage(main, params) {
  const filters = Object.fromEntries(params.entries());
  const form = h('form', { class: 'filters', id: 'instance-filters' });
  for (const [name, label, type] of FIELDS) {
    form.append(h('label', {}, label, h('input', { name, type, value: filters[name] || '', placeholder: name.startsWith('started') ? '2026-12-04T10:00:00Z' : null })));
  }
  form.append(
    h('label', {}, 'State', select('state', ['', 'active', 'completed', 'cancelled', 'failed'], filters.state)),
    h('label', {}, 'Incidents', select('incidents', ['', 'yes', 'no'], filters.incidents)),
    h('button', { type: 'submit' }, 'Filter')
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    for (const [key, value] of new FormData(form).entries()) if (value) query.set(key, value);
    window.location.hash = '#/instances' + (query.toString() ? '?' + query : '');
  });
  const status = h('div', { class: 'status' });
  const body = h('tbody', { id: 'instance-rows' });
  const more = h('button', { type: 'button', id: 'next-page', hidden: true }, 'Next page');
  const table = h('table', { class: 'list' },
    h('thead', {}, h('tr', {}, ['Instance', 'Process', 'Version', 'State', 'Business key', 'Started', 'Ended', 'Incidents'].map((t) => h('th', {}, t)))),
    body);
  main.replaceChildren(h('h1', {}, 'Instances'), form, status, table, more);

  let cursors = [null];
  let rows = new Map();

  async function load(cursor) {
    try {
      const page = await get('/api/instances', { ...filters, cursor });
      rows = new Map();
      body.replaceChildren(...page.instances.map((s) => {
        const row = instanceRow(s);
        rows.set(s.id, row);
        return row;
      }));
      message(status, page.instances.length ? '' : 'No instances match.', 'note');
      more.hidden = !page.cursor;
      more.onclick = () => { cursors.push(page.cursor); load(page.cursor); };
    } catch (error) {
      message(status, error.message);
    }
  }
  load(null);

  let pending = null;
  const source = stream('/api/events', {
    step: (step) => {
      const row = rows.get(step.instance);
      if (row) row.querySelector('.state').textContent = step.state;
      if (!pending) pending = setTimeout(() => { pending = null; load(cursors[cursors.length - 1]); }, 1000);
    }
  });
  return () => { source.close(); if (pending) clearTimeout(pending); };
}

function instanceRow(s) {
  return h('tr', { 'data-instance': s.id },
    h('td', {}, h('a', { href: '#/instances/' + encodeURIComponent(s.id) }, s.id)),
    h('td', {}, s.process_id),
    h('td', {}, s.version),
    h('td', { class: 'state state-' + s.state }, s.state),
    h('td', {}, s.business_key || ''),
    h('td', {}, when(s.started)),
    h('td', {}, when(s.ended)),
    h('td', { class: s.incidents ? 'incidents' : '' }, s.incidents || ''));
}

export function select(name, options, value) {
  return h('select', { name }, options.map((o) => h('option', { value: o, selected: o === (value || '') }, o || 'any')));
}
