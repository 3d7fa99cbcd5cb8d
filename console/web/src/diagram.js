// The bpmn-js viewer with natsflow's overlays: tokens, counts, incidents, heat, errors.

import NavigatedViewer from 'bpmn-js/lib/NavigatedViewer';
import { h } from './dom.js';

const MARKERS = ['nf-active', 'nf-done', 'nf-incident', 'nf-error', 'nf-current'];

export class Diagram {
  // `viewer`: an existing bpmn-js viewer or modeler to paint on (the modeler page's).
  constructor(container, viewer) {
    this.container = container;
    this.viewer = viewer || new NavigatedViewer({ container });
    this.markers = new Map();
  }

  async show(xml) {
    const { warnings } = await this.viewer.importXML(xml);
    this.viewer.get('canvas').zoom('fit-viewport', 'auto');
    return warnings;
  }

  has(id) {
    return !!this.viewer.get('elementRegistry').get(id);
  }

  clear() {
    this.viewer.get('overlays').remove({ type: 'nf' });
    const canvas = this.viewer.get('canvas');
    for (const [id, names] of this.markers) {
      for (const name of names) canvas.removeMarker(id, name);
    }
    this.markers.clear();
  }

  mark(id, name) {
    if (!this.has(id)) return;
    this.viewer.get('canvas').addMarker(id, name);
    if (!this.markers.has(id)) this.markers.set(id, new Set());
    this.markers.get(id).add(name);
  }

  badge(id, cls, text, position, title) {
    if (!this.has(id)) return;
    const html = h('div', { class: 'nf-badge ' + cls, 'data-element': id, title: title || null }, String(text));
    this.viewer.get('overlays').add(id, 'nf', { position, html });
  }

  // state: {active: {el: n}, done: Set(el), incidents: {el: [message]}, counts: {el: n}, flows: Set(id)}
  paint(state) {
    this.clear();
    for (const id of state.done || []) this.mark(id, 'nf-done');
    for (const [id, n] of Object.entries(state.active || {})) {
      this.mark(id, 'nf-active');
      this.badge(id, 'nf-token', n, { bottom: 8, left: -8 }, n + ' active');
    }
    for (const [id, messages] of Object.entries(state.incidents || {})) {
      this.mark(id, 'nf-incident');
      this.badge(id, 'nf-incident-badge', messages.length, { top: -10, right: 10 }, messages.join('\n'));
    }
    for (const [id, n] of Object.entries(state.counts || {})) {
      this.badge(id, 'nf-count', n, { bottom: 8, right: 10 }, 'entered ' + n + ' times');
    }
    if (state.current) this.mark(state.current, 'nf-current');
  }

  heat(active, incidents) {
    this.clear();
    const top = Math.max(1, ...Object.values(active));
    for (const [id, n] of Object.entries(active)) {
      const level = Math.ceil((4 * n) / top);
      this.mark(id, 'nf-heat-' + level);
      this.badge(id, 'nf-heat', n, { bottom: 8, left: -8 }, n + ' instances here');
    }
    for (const [id, n] of Object.entries(incidents)) {
      this.mark(id, 'nf-incident');
      this.badge(id, 'nf-incident-badge', n, { top: -10, right: 10 }, n + ' incidents');
    }
  }

  // The validator's errors (a red outline and badge) and warnings (a badge) at their elements.
  errors(issues, warnings = []) {
    this.clear();
    for (const issue of issues) {
      if (!issue.element_id) continue;
      this.mark(issue.element_id, 'nf-error');
      this.badge(issue.element_id, 'nf-error-badge', '!', { top: -10, left: -10 }, issue.message);
    }
    const warned = {};
    for (const warning of warnings) {
      if (warning.element_id) (warned[warning.element_id] ||= []).push(warning.message);
    }
    for (const [id, messages] of Object.entries(warned)) {
      this.badge(id, 'nf-warning-badge', messages.length, { top: -10, left: 14 }, messages.join('\n'));
    }
  }

  destroy() {
    this.viewer.destroy();
  }
}

export { MARKERS };
