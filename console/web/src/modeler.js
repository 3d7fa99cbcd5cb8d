// The modeler: bpmn-js with the Zeebe properties panel (what Camunda Modeler 8 writes), checked
// by natsflow's own validator on every change, deployed or exported as a Workflow resource,
// and simulated (simulate.js).

import BpmnModeler from 'bpmn-js/lib/Modeler';
import { BpmnPropertiesPanelModule, BpmnPropertiesProviderModule, ZeebePropertiesProviderModule } from 'bpmn-js-properties-panel';
import ZeebeBehaviorsModule from 'camunda-bpmn-js-behaviors/lib/camunda-cloud';
import zeebeModdle from 'zeebe-bpmn-moddle/resources/zeebe.json';
import { get, post } from './api.js';
import { Diagram } from './diagram.js';
import { download as save, h, message } from './dom.js';
import { simulationPanel } from './simulate.js';

// A new diagram as Camunda Modeler 8 starts one: an executable process with a start event.
export function newDiagram(processId) {
  return `<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" xmlns:dc="http://www.omg.org/spec/DD/20100524/DC" xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" xmlns:modeler="http://camunda.org/schema/modeler/1.0" id="Definitions_${processId}" targetNamespace="http://bpmn.io/schema/bpmn" exporter="natsflow console" modeler:executionPlatform="Camunda Cloud" modeler:executionPlatformVersion="8.6.0">
  <bpmn:process id="${processId}" isExecutable="true">
    <bpmn:startEvent id="StartEvent_1" />
  </bpmn:process>
  <bpmndi:BPMNDiagram id="BPMNDiagram_1">
    <bpmndi:BPMNPlane id="BPMNPlane_1" bpmnElement="${processId}">
      <bpmndi:BPMNShape id="StartEvent_1_di" bpmnElement="StartEvent_1">
        <dc:Bounds x="152" y="102" width="36" height="36" />
      </bpmndi:BPMNShape>
    </bpmndi:BPMNPlane>
  </bpmndi:BPMNDiagram>
</bpmn:definitions>
`;
}

export function modelerPage(main, user, params) {
  const canWrite = user.role === 'operator';
  const status = h('div', { class: 'status', id: 'modeler-status' });
  const check = h('div', { id: 'validation', class: 'validation' });
  const result = h('div', { id: 'modeler-result' });
  const canvas = h('div', { class: 'canvas modeler', id: 'modeler' });
  const panel = h('div', { class: 'properties', id: 'properties' });
  const fileInput = h('input', { type: 'file', accept: '.bpmn,.xml', id: 'modeler-file' });
  const processes = h('select', { id: 'modeler-open' }, h('option', { value: '' }, 'Open a deployed version…'));
  const sim = h('div', { id: 'simulation' });
  main.replaceChildren(
    h('div', { class: 'headline' }, h('h1', {}, 'Modeler'),
      h('button', { id: 'modeler-new', onclick: () => open(newDiagram('Process_' + Math.random().toString(36).slice(2, 9)), 'new') }, 'New diagram'),
      h('label', {}, 'Open a file ', fileInput), processes),
    status,
    h('div', { class: 'modeler-tools' },
      canWrite ? h('button', { id: 'modeler-deploy', onclick: () => deploy() }, 'Deploy') : null,
      h('button', { id: 'modeler-download', onclick: () => download() }, 'Download .bpmn'),
      h('button', { id: 'modeler-export', onclick: () => exportWorkflow(false) }, 'Export Workflow resource'),
      h('button', { id: 'modeler-export-cm', onclick: () => exportWorkflow(true) }, 'Export Workflow + ConfigMap')),
    check, result,
    h('div', { class: 'modeler-split' }, canvas, panel),
    sim);

  const modeler = new BpmnModeler({
    container: canvas,
    propertiesPanel: { parent: panel },
    additionalModules: [BpmnPropertiesPanelModule, BpmnPropertiesProviderModule, ZeebePropertiesProviderModule, ZeebeBehaviorsModule],
    moddleExtensions: { zeebe: zeebeModdle }
  });
  const marks = new Diagram(canvas, modeler);
  canvas.nfModeler = modeler; // for automation (browser tests draw through bpmn-js's own services too)
  let name = 'diagram.bpmn';
  let pending = null;
  let generation = 0;
  let lastIssues = [];

  async function xml() {
    const { xml: text } = await modeler.saveXML({ format: true });
    return text;
  }

  async function open(text, label) {
    try {
      const { warnings } = await modeler.importXML(text);
      modeler.get('canvas').zoom('fit-viewport', 'auto');
      canvas.dataset.warnings = String(warnings.length);
      message(status, warnings.length ? label + ' opened with ' + warnings.length + ' import warning(s): ' + warnings.map((w) => w.message).join('; ') : '', 'note');
      result.replaceChildren();
      validate();
    } catch (error) {
      message(status, 'Cannot open ' + label + ': ' + error.message);
    }
  }

  // natsflow's validator on the current XML (no deploy); its issues at their elements.
  async function validate() {
    const mine = ++generation;
    check.dataset.state = 'checking';
    let reply;
    try {
      reply = await post('/api/validate', { source: await xml(), name });
    } catch (error) {
      if (mine === generation) message(check, error.message);
      return;
    }
    if (mine !== generation) return;
    lastIssues = reply.issues;
    const warnings = reply.warnings || [];
    marks.errors(reply.issues, warnings);
    panelErrors();
    check.dataset.state = reply.valid ? 'valid' : 'invalid';
    const listed = (cls, id, issues) => h('ul', { class: cls, id }, issues.map((i) => h('li', { 'data-element': i.element_id || '' },
      h('a', { href: '#', onclick: (event) => { event.preventDefault(); select(i.element_id); } }, i.element_id || 'document'), ': ', i.message)));
    check.replaceChildren(reply.valid
      ? h('p', { class: 'ok' }, '✓ Valid: ' + reply.processes.filter((p) => p.executable).map((p) => p.id).join(', '))
      : listed('issues', 'validation-issues', reply.issues));
    if (warnings.length) check.append(listed('warnings', 'validation-warnings', warnings));
    sim.dispatchEvent(new CustomEvent('validated', { detail: reply }));
  }

  // The validator's issues of the selected element under the properties panel's fields they
  // are about (FEEL and job type errors; others stay on the canvas and in the list).
  const ENTRIES = [
    [/loop condition|completion condition/, 'completionCondition'],
    [/condition/, 'conditionExpression'],
    [/job type|taskDefinition/, 'taskDefinitionType'],
    [/retries/, 'taskDefinitionRetries'],
    [/timer|duration|cycle/, 'timerEventDefinitionValue']
  ];
  function panelErrors() {
    const selected = modeler.get('selection').get();
    const id = selected.length === 1 ? selected[0].id : null;
    const errors = {};
    for (const issue of lastIssues) {
      if (!id || issue.element_id !== id) continue;
      const entry = ENTRIES.find(([pattern]) => pattern.test(issue.message));
      if (entry && !errors[entry[1]]) errors[entry[1]] = issue.message;
    }
    modeler.get('eventBus').fire('propertiesPanel.setErrors', { errors });
  }
  modeler.on('selection.changed', () => { setTimeout(panelErrors, 0); }); // returning a value would stop the event

  // Job types offered while typing: the tenant's TaskDefinitions.
  const taskTypes = h('datalist', { id: 'nf-task-types' });
  main.append(taskTypes);
  get('/api/task-types').then(({ task_types: types }) => {
    taskTypes.replaceChildren(...types.map((t) => h('option', { value: t.task_type }, t.name)));
  }).catch((error) => message(status, error.message));
  const offer = new MutationObserver(() => {
    const input = panel.querySelector('#bio-properties-panel-taskDefinitionType');
    if (input && input.getAttribute('list') !== 'nf-task-types') input.setAttribute('list', 'nf-task-types');
  });
  offer.observe(panel, { childList: true, subtree: true });

  function select(id) {
    const element = id && modeler.get('elementRegistry').get(id);
    if (element) modeler.get('selection').select(element);
  }

  modeler.on('commandStack.changed', () => {
    if (pending) clearTimeout(pending);
    pending = setTimeout(() => { pending = null; validate(); }, 250);
  });

  async function deploy() {
    try {
      const { deployed } = await post('/api/deploy', { source: await xml(), name });
      result.replaceChildren(h('ul', { class: 'deployed' }, deployed.map((d) => h('li', {},
        h('a', { href: '#/processes/' + encodeURIComponent(d.process_id) + '?version=' + d.version }, d.process_id + ' v' + d.version),
        d.created ? ' deployed' : ' unchanged (same as the latest version)'))));
    } catch (error) {
      const issues = error.details || [];
      if (issues.length) marks.errors(issues);
      message(result, 'Not deployed: ' + error.message);
    }
  }

  async function download() {
    save(await xml(), name.endsWith('.bpmn') ? name : name + '.bpmn', 'application/xml');
  }

  async function exportWorkflow(configMap) {
    try {
      const response = await fetch('/api/export/workflow', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        credentials: 'same-origin',
        body: JSON.stringify({ source: await xml(), name, config_map: configMap })
      });
      const text = await response.text();
      if (!response.ok) throw new Error(JSON.parse(text).error.message);
      const preview = h('pre', { class: 'vars', id: 'workflow-yaml' }, text);
      result.replaceChildren(h('p', { class: 'note' }, 'Commit this file for Argo CD (also downloaded):'), preview);
      save(text, name.replace(/\.(bpmn|xml)$/, '') + '.workflow.yaml', 'application/yaml');
    } catch (error) {
      message(result, 'Not exported: ' + error.message);
    }
  }

  fileInput.addEventListener('change', async () => {
    const file = fileInput.files[0];
    if (!file) return;
    name = file.name;
    open(await file.text(), file.name);
  });
  processes.addEventListener('change', async () => {
    const [pid, version] = processes.value.split('@');
    if (!pid) return;
    window.location.hash = '#/modeler?process=' + encodeURIComponent(pid) + '&version=' + version;
  });
  get('/api/processes').then(({ processes: list }) => {
    for (const p of list) processes.append(h('option', { value: p.process_id + '@' + p.version }, p.process_id + ' v' + p.version));
  }).catch((error) => message(status, error.message));

  const pid = params.get('process');
  if (pid) {
    get('/api/processes/' + encodeURIComponent(pid), { version: params.get('version') }).then((workflow) => {
      name = pid + '.bpmn';
      open(workflow.source, pid + ' v' + workflow.version);
    }).catch((error) => message(status, error.message));
  } else {
    open(newDiagram('Process_' + Math.random().toString(36).slice(2, 9)), 'new');
  }
  const simulation = simulationPanel(sim, { xml, marks, modeler, issues: () => lastIssues });
  return () => { offer.disconnect(); simulation.destroy(); modeler.destroy(); };
}
