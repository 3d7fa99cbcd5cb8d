// A step-by-step simulation (/api/simulations): it stops where the model waits, and the user
// fires a message or a signal, moves the virtual clock or fires a pending timer; the token moves
// on the diagram after each. The run so far saves as a scenario file (with the events fired by
// hand at their virtual times) that `natsflow simulate` replays.

import { post, remove } from './api.js';
import { download as save, h, message, parseObject } from './dom.js';

// `node`: where the controls go; `outline()`: the model's messages and signals (offered by
// name); `shown(view)`: show a new state; `failed(text)`: show an error; `exportTest(run)`:
// export {source, scenario} as a pytest module.
export function liveControls(node, { outline, shown, failed, exportTest }) {
  let view = null;
  let source = null;
  let advanceBy = 'PT1H';
  const note = h('div', { id: 'sim-live-note' });

  async function start(body) {
    stop();
    try {
      view = await post('/api/simulations', body);
      source = body.source;
    } catch (error) {
      failed(error.message);
      return;
    }
    draw();
  }

  // Ends the open simulation on the server (leaving the page, or starting another).
  function stop() {
    if (view) remove('/api/simulations/' + encodeURIComponent(view.id)).catch(() => {}); // it ends unused anyway
    view = null;
    node.replaceChildren();
  }

  async function move(path, body, what) {
    message(note, what + '…', 'note');
    try {
      view = await post('/api/simulations/' + encodeURIComponent(view.id) + path, body);
    } catch (error) {
      message(note, error.message);
      return;
    }
    draw();
    message(note, view.reached === null ? '' : what + ': reached ' + view.reached + ' catch(es)', 'note');
  }

  function fire(body, what) {
    return move('/fire', body, what);
  }

  function variables(input) {
    try {
      return parseObject(input.value);
    } catch (error) {
      message(note, error.message);
      return null;
    }
  }

  function draw() {
    const names = outline() || { messages: [], signals: [] };
    const messageName = h('input', { id: 'sim-message-name', list: 'sim-messages', value: names.messages[0] || '', size: 16 });
    const key = h('input', { id: 'sim-message-key', placeholder: 'correlation key', size: 14 });
    const messageVars = h('input', { id: 'sim-message-variables', value: '{}', size: 24 });
    const signalName = h('input', { id: 'sim-signal-name', list: 'sim-signals', value: names.signals[0] || '', size: 16 });
    const signalVars = h('input', { id: 'sim-signal-variables', value: '{}', size: 24 });
    const by = h('input', { id: 'sim-advance-by', value: advanceBy, size: 8, onchange: () => { advanceBy = by.value; } });
    const finished = view.finished;
    const live = !finished;
    node.replaceChildren(...[
      h('h3', {}, 'Step by step'),
      h('p', { id: 'sim-clock' }, 'Virtual time ', h('strong', {}, view.virtual_time), ' (' + view.elapsed + ' s from the start)',
        finished ? ' · ran to its end' : ''),
      h('datalist', { id: 'sim-messages' }, names.messages.map((m) => h('option', { value: m }))),
      h('datalist', { id: 'sim-signals' }, names.signals.map((m) => h('option', { value: m }))),
      live ? h('div', { class: 'actions' }, h('label', {}, 'Message ', messageName), key, h('label', {}, 'variables ', messageVars),
        h('button', { id: 'sim-fire-message', onclick: () => {
          const vars = variables(messageVars);
          if (vars) fire({ message: { name: messageName.value, correlationKey: key.value, variables: vars } }, 'Message ' + messageName.value);
        } }, 'Fire message')) : null,
      live ? h('div', { class: 'actions' }, h('label', {}, 'Signal ', signalName), h('label', {}, 'variables ', signalVars),
        h('button', { id: 'sim-fire-signal', onclick: () => {
          const vars = variables(signalVars);
          if (vars) fire({ signal: { name: signalName.value, variables: vars } }, 'Signal ' + signalName.value);
        } }, 'Broadcast signal')) : null,
      live ? h('div', { class: 'actions' }, h('label', {}, 'Clock ', by),
        h('button', { id: 'sim-advance', onclick: () => fire({ advance: by.value }, 'Advance ' + by.value) }, 'Advance'),
        h('button', { id: 'sim-next-due', onclick: () => fire({ advance: 'next' }, 'To the next timer or event') }, 'To the next timer or event'),
        h('button', { id: 'sim-finish', onclick: () => move('/finish', {}, 'Run to the end') }, 'Run to the end')) : null,
      view.timers.length ? h('ul', { id: 'sim-timers' }, view.timers.map((t) => h('li', { 'data-element': t.element_id || '' },
        'Timer ', h('code', {}, t.element_id || t.id), ' due ' + t.due + ' ',
        live ? h('button', { class: 'sim-fire-timer', onclick: () => fire({ timer: t.id }, 'Timer ' + (t.element_id || t.id)) }, 'Fire') : null))) : null,
      view.scheduled.length ? h('p', { id: 'sim-scheduled' }, 'Scheduled: ' + view.scheduled.map((e) => e.at + ' ' +
        (e.message ? 'message ' + e.message.name : e.signal ? 'signal ' + e.signal.name : 'time')).join(', ')) : null,
      h('div', { class: 'actions' },
        h('button', { id: 'sim-live-save', onclick: () => save(JSON.stringify(view.scenario, null, 2) + '\n', 'scenario.json', 'application/json') },
          'Save this run as a scenario'),
        h('button', { id: 'sim-live-export', onclick: () => exportTest({ source, scenario: view.scenario }) }, 'Export this run as a pytest test'),
        h('button', { id: 'sim-stop', onclick: () => stop() }, 'Stop')),
      note].filter(Boolean));
    shown(view);
  }

  return { start, stop };
}
