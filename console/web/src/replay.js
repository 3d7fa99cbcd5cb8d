// Fold history records into what the diagram shows: tokens, completed path, incidents, counts.

const ROOT = 1;

export function fold(records, upto) {
  const active = new Map(); // ei -> element
  const done = new Set();
  const entered = new Set();
  const counts = {};
  const incidents = new Map(); // ei -> {element, message}
  const variables = [];
  const last = upto === undefined ? records.length - 1 : upto;
  for (let i = 0; i <= last && i < records.length; i++) {
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
  return { active: activeCounts, done, entered, counts, incidents: incidentMessages, variables, state };
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

export function describe(event) {
  const data = event.data || {};
  const extra = Object.entries(data)
    .filter(([, v]) => v !== null && v !== undefined && v !== '')
    .map(([k, v]) => k + '=' + (Array.isArray(v) ? v.join(',') : typeof v === 'object' ? JSON.stringify(v) : v))
    .join(' ');
  return event.type + (event.element_id ? ' ' + event.element_id : '') + (extra ? ' (' + extra + ')' : '');
}
