// Processes: deployed versions, the diagram of each with a heatmap of running instances, and
// deploying a .bpmn by drag-and-drop with the validator's errors shown at their elements.

import { get, post, stream } from './api.js';
import { Diagram } from './diagram.js';
import { h, message, when } from './dom.js';

export function processesPage(main, user) {
  const body = h('tbody', { id: 'process-rows' });
  const status = h('div', { class: 'status' });
  const drop = user.role === 'operator' ? deployZone(() => load()) : null;
  main.replaceChildren(h('h1', {}, 'Processes'), drop ? drop.node : '', status,
    h('table', { class: 'list' }, h('thead', {}, h('tr', {}, ['Process', 'Name', 'Latest version', 'Deployed'].map((t) => h('th', {}, t)))), body));
  async function load() {
    try {
      const { processes } = await get('/api/processes');
      body.replaceChildren(...processes.map((p) => h('tr', { 'data-process': p.process_id },
        h('td', {}, h('a', { href: '#/processes/' + encodeURIComponent(p.process_id) + '?version=' + p.version }, p.process_id)),
        h('td', {}, p.name || ''), h('td', {}, p.version), h('td', {}, when(p.deployed_at)))));
      message(status, processes.length ? '' : 'Nothing deployed yet.', 'note');
    } catch (error) {
      message(status, error.message);
    }
  }
  load();
  return () => { if (drop) drop.destroy(); };
}

function deployZone(onDeployed) {
  const out = h('div', { id: 'deploy-result' });
  const input = h('input', { type: 'file', accept: '.bpmn,.xml,.form', id: 'deploy-file' });
  const canvas = h('div', { class: 'canvas small', id: 'deploy-diagram', hidden: true });
  let diagram = null;
  const node = h('div', { class: 'dropzone', id: 'dropzone' },
    h('p', {}, 'Drop a .bpmn (or a Camunda .form) file here to deploy it, or ', h('label', {}, 'choose one ', input)), out, canvas);
  async function deploy(file) {
    message(out, 'Deploying ' + file.name + '…', 'note');
    canvas.hidden = true;
    const source = await file.text();
    try {
      const { deployed, forms } = await post('/api/deploy', { source, name: file.name });
      out.replaceChildren(h('ul', { class: 'deployed' }, deployed.map((d) => h('li', {},
        h('a', { href: '#/processes/' + encodeURIComponent(d.process_id) + '?version=' + d.version }, d.process_id + ' v' + d.version),
        d.created ? ' deployed' : ' unchanged (same as the latest version)')),
        forms.map((f) => h('li', { 'data-form': f.form_id }, 'form ' + f.form_id + ' v' + f.version + (f.created ? ' deployed' : ' unchanged (same as the latest version)')))));
      onDeployed();
    } catch (error) {
      const issues = error.details || [];
      out.replaceChildren(h('p', { class: 'error' }, file.name + ' was not deployed'),
        h('ul', { class: 'issues', id: 'deploy-issues' }, issues.map((i) => h('li', { 'data-element': i.element_id || '' },
          (i.element_id ? i.element_id + ': ' : '') + (i.line ? 'line ' + i.line + ': ' : '') + i.message))));
      if (!issues.length) out.append(h('p', { class: 'error' }, error.message));
      if (issues.some((i) => i.element_id)) {
        canvas.hidden = false;
        if (!diagram) diagram = new Diagram(canvas);
        try {
          await diagram.show(source);
          diagram.errors(issues);
        } catch (e) {
          canvas.hidden = true;
        }
      }
    }
  }
  input.addEventListener('change', () => { if (input.files.length) deploy(input.files[0]); });
  node.addEventListener('dragover', (event) => { event.preventDefault(); node.classList.add('over'); });
  node.addEventListener('dragleave', () => node.classList.remove('over'));
  node.addEventListener('drop', (event) => {
    event.preventDefault();
    node.classList.remove('over');
    const file = event.dataTransfer && event.dataTransfer.files[0];
    if (file) deploy(file);
  });
  return { node, destroy: () => { if (diagram) diagram.destroy(); } };
}

export function processPage(main, pid, params) {
  const status = h('div', { class: 'status' });
  const versions = h('select', { id: 'version-select' });
  const summary = h('p', { id: 'heatmap-summary', class: 'note' });
  const canvas = h('div', { class: 'canvas', id: 'diagram' });
  main.replaceChildren(h('div', { class: 'headline' }, h('h1', {}, 'Process ', h('code', {}, pid)), h('label', {}, 'Version ', versions)),
    status, summary, canvas,
    h('p', {}, h('a', { id: 'process-instances', href: '#/instances?process=' + encodeURIComponent(pid) }, 'Instances of this process')));
  const diagram = new Diagram(canvas);
  let version = params.get('version');
  let shown = false;

  async function heat() {
    const map = await get('/api/processes/' + encodeURIComponent(pid) + '/heatmap', { version });
    diagram.heat(map.active, map.incidents);
    summary.textContent = map.instances + ' running instance' + (map.instances === 1 ? '' : 's') + ' of version ' + version + (map.truncated ? ' (first ' + map.instances + ' only)' : '');
    summary.dataset.instances = map.instances;
  }

  async function load() {
    try {
      const workflow = await get('/api/processes/' + encodeURIComponent(pid), { version });
      version = String(workflow.version);
      versions.replaceChildren(...workflow.versions.map((v) => h('option', { value: v, selected: String(v) === version }, 'v' + v + (v === workflow.latest_version ? ' (latest)' : ''))));
      await diagram.show(workflow.source);
      shown = true;
      await heat();
    } catch (error) {
      message(status, error.message);
    }
  }
  versions.addEventListener('change', () => { window.location.hash = '#/processes/' + encodeURIComponent(pid) + '?version=' + versions.value; });
  load();
  let pending = null;
  const source = stream('/api/events', {
    step: (step) => {
      if (step.process_id !== pid || !shown || pending) return;
      pending = setTimeout(() => { pending = null; heat().catch((error) => message(status, error.message)); }, 500);
    }
  });
  return () => { source.close(); if (pending) clearTimeout(pending); diagram.destroy(); };
}
