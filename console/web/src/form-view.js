// form-js (its own entry point, loaded by forms.js when a task shows a form; its stylesheet is
// form-view.css).

import { Form } from '@bpmn-io/form-js-viewer';

// Renders `schema` with `data` into `container`; submit() -> {data, invalid: [field labels]}.
export async function renderForm(container, schema, data) {
  const form = new Form({ container });
  await form.importSchema(schema, data);
  const labels = new Map((schema.components || []).map((c) => [c.id, c.label || c.key || c.id]));
  return {
    submit: () => {
      const { data: values, errors } = form.submit();
      return { data: values, invalid: Object.keys(errors).map((id) => labels.get(id) || id) };
    },
    destroy: () => form.destroy()
  };
}
