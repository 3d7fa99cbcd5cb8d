// Camunda forms embedded in the BPMN (zeebe:userTaskForm, referenced by the user task's
// zeebe:formDefinition formKey "camunda-forms:bpmn:<id>"), rendered with form-js (loaded on
// first use: form-view.js).

import { load } from './lazy.js';

const ZEEBE = 'http://camunda.org/schema/zeebe/1.0';
const PREFIX = 'camunda-forms:bpmn:';

// The form schema a form key names in a BPMN document, or null.
export function embeddedForm(xml, formKey) {
  if (!formKey || !formKey.startsWith(PREFIX)) return null;
  const id = formKey.slice(PREFIX.length);
  const doc = new DOMParser().parseFromString(xml, 'application/xml');
  for (const node of doc.getElementsByTagNameNS(ZEEBE, 'userTaskForm')) {
    if (node.getAttribute('id') === id) return JSON.parse(node.textContent);
  }
  return null;
}

// Renders `schema` with `data` into `container`; submit() -> {data, invalid: [field labels]}.
export async function renderForm(container, schema, data) {
  return (await load('form-view')).renderForm(container, schema, data);
}
