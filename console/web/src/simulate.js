// Simulation in the modeler: a scenario (mocks per job type, user task completions, events on a
// virtual clock) run by the engine on its own embedded server; the token then steps through the
// history on the diagram with the variables of each step, or the counts of many instances.
// "Step by step" keeps the simulation open (/api/simulations): messages, signals and the clock
// are moved on by hand between steps (live.js), and the run saves as a scenario file.

import { post } from './api.js';
import { download as save, h, message } from './dom.js';
import { liveControls } from './live.js';
import { flowsTaken, fold, variablesTable } from './replay.js';

// A scenario for a model outline (from the validator): every job type completes, every user
// task completes, nothing else happens.
export function scenarioFor(outline, previous) {
  const scenario = previous ? { ...previous } : { variables: {}, instances: 1, seed: 1, tasks: {}, userTasks: {}, events: [] };
  scenario.tasks = { ...(scenario.tasks || {}) };
  scenario.userTasks = { ...(scenario.userTasks || {}) };
  for (const type of outline.task_types) if (!(type in scenario.tasks)) scenario.tasks[type] = { complete: {} };
  for (const id of outline.user_tasks) if (!(id in scenario.userTasks)) scenario.userTasks[id] = { complete: {} };
  return scenario;
}

export function simulationPanel(node, { xml, marks, modeler }) {
  const editor = h('textarea', { id: 'sim-scenario', rows: 12, spellcheck: 'false' });
  const out = h('div', { id: 'sim-result' });
  const live = h('div', { id: 'sim-live', class: 'sim-live' });
  const bar = h('div', { class: 'replay', id: 'sim-bar' });
  const vars = h('div', { class: 'replay-variables', id: 'sim-variables' });
  const hint = h('p', { class: 'note', id: 'sim-outline' });
  let edited = false;
  let result = null;
  let at = 0;
  editor.addEventListener('input', () => { edited = true; });
  node.replaceChildren(
    h('h2', {}, 'Simulate'),
    h('p', { class: 'note' }, 'Runs this diagram on an engine of its own with a virtual clock: job types answer with their mock ' +
      '(complete with variables, a BPMN error, or a failure; a list picks by weight), user tasks complete as scripted, events fire at ' +
      'their time (ISO 8601 durations from the start), timers on their schedule until "until". Nothing touches real instances or workers.'),
    hint,
    h('label', {}, 'Scenario (JSON)', editor),
    h('div', { class: 'actions' },
      h('button', { id: 'sim-run', onclick: () => run() }, 'Simulate'),
      h('button', { id: 'sim-step', onclick: () => stepByStep() }, 'Step by step'),
      h('button', { id: 'sim-save', onclick: () => saveScenario() }, 'Save scenario'),
      h('button', { id: 'sim-export-test', onclick: () => exportTest() }, 'Export as pytest test')),
    live, out, bar, vars);
  let outline = null;
  const session = liveControls(live, {
    outline: () => outline,
    shown: (view) => render(view.result, true),
    failed: (text) => message(out, text),
    exportTest: (run) => exportTest(run)
  });

  function scenario() {
    return JSON.parse(editor.value || '{}');
  }

  node.addEventListener('validated', (event) => {
    if (!event.detail.outline) return;
    outline = event.detail.outline;
    hint.textContent = 'Job types: ' + (outline.task_types.join(', ') || '—') + ' · user tasks: ' + (outline.user_tasks.join(', ') || '—') +
      ' · messages: ' + (outline.messages.join(', ') || '—') + ' · signals: ' + (outline.signals.join(', ') || '—') + ' · timers: ' + (outline.timers.join(', ') || '—');
    let current = null;
    try { current = editor.value ? scenario() : null; } catch (e) { return; }
    if (edited && current) return;
    editor.value = JSON.stringify(scenarioFor(outline, current), null, 2);
  });

  async function body() {
    try {
      return { source: await xml(), scenario: scenario() };
    } catch (error) {
      message(out, 'The scenario is not JSON: ' + error.message);
      return null;
    }
  }

  async function run() {
    const sent = await body();
    if (!sent) return;
    session.stop();
    message(out, 'Simulating…', 'note');
    try {
      render(await post('/api/simulate', sent), false);
    } catch (error) {
      message(out, error.message);
    }
  }

  // A simulation kept open: it stops at its first wait; live.js moves it on.
  async function stepByStep() {
    const sent = await body();
    if (!sent) return;
    message(out, 'Starting…', 'note');
    await session.start(sent);
  }

  // The result on the page; `latest`: show its last step (a step-by-step simulation moved on).
  function render(shown, latest) {
    result = shown;
    const first = result.first;
    out.replaceChildren(...[
      h('p', { id: 'sim-summary' }, result.process_id + ': ' + result.instances + ' instance(s), ' +
        Object.entries(result.states).map(([s, n]) => n + ' ' + s).join(', ') + ' · virtual time ' + result.virtual_time + ' · ' + result.seconds + ' s'),
      h('p', {}, 'First instance: ', h('strong', { id: 'sim-state' }, first.state), ' · path ', h('code', { id: 'sim-path' }, first.path.join(' → '))),
      first.incidents.length ? h('p', { class: 'error', id: 'sim-incidents' }, first.incidents.map((i) => i.element_id + ': ' + i.message).join('; ')) : null,
      result.instances > 1 ? h('button', { id: 'sim-frequencies', onclick: () => frequencies() }, 'Show instances per element') : null
    ].filter(Boolean));
    at = latest ? result.history.length - 1 : 0;
    controls();
    show();
  }

  function controls() {
    const go = (index) => { at = Math.max(0, Math.min(result.history.length - 1, index)); show(); };
    bar.replaceChildren(
      h('strong', {}, 'Step '),
      h('button', { id: 'sim-first', onclick: () => go(0) }, 'First'),
      h('button', { id: 'sim-prev', onclick: () => go(at - 1) }, '◀ Step'),
      h('button', { id: 'sim-next', onclick: () => go(at + 1) }, 'Step ▶ (to the next wait)'),
      h('button', { id: 'sim-last', onclick: () => go(result.history.length - 1) }, 'End'),
      h('span', { id: 'sim-position' }));
  }

  function show() {
    const records = result.history;
    const record = records[at];
    const view = fold(records, at);
    const flows = flowsTaken(modeler.get('elementRegistry'), view.done, view.entered);
    marks.paint({ ...view, done: new Set([...view.done, ...flows]) });
    document.getElementById('sim-position').textContent = 'step ' + record.step + ' of ' + records[records.length - 1].step + ': ' + record.command + ' → ' + record.state;
    vars.replaceChildren(h('h3', {}, 'Variables at step ' + record.step), variablesTable(view));
  }

  function frequencies() {
    marks.heat(result.elements, {});
  }

  function saveScenario() {
    try {
      save(JSON.stringify(scenario(), null, 2) + '\n', 'scenario.json', 'application/json');
    } catch (error) {
      message(out, 'The scenario is not JSON: ' + error.message);
    }
  }

  // The editor's scenario on the current diagram, or `run` ({source, scenario}: a
  // step-by-step run as it went, on the diagram it started from) as a pytest module.
  async function exportTest(run) {
    try {
      const body = run || { source: await xml(), scenario: scenario() };
      const response = await fetch('/api/export/pytest', {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, credentials: 'same-origin',
        body: JSON.stringify(body)
      });
      const text = await response.text();
      if (!response.ok) throw new Error(JSON.parse(text).error.message);
      out.replaceChildren(h('p', { class: 'note' }, 'A pytest module with natsflow.testing (also downloaded):'), h('pre', { class: 'vars', id: 'sim-test' }, text));
      const disposition = response.headers.get('Content-Disposition') || '';
      save(text, (disposition.match(/filename="([^"]+)"/) || [null, 'test_simulation.py'])[1], 'text/x-python');
    } catch (error) {
      message(out, 'Not exported: ' + error.message);
    }
  }

  return { destroy: () => session.stop() };
}
