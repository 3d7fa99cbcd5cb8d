// Small DOM helpers: elements from tag, attributes and children; text is always escaped.

export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'class') node.className = value;
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function json(value) {
  return JSON.stringify(value, null, 2);
}

export function when(text) {
  if (!text) return '';
  const date = new Date(text);
  return isNaN(date) ? text : date.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function message(target, text, kind) {
  target.replaceChildren(text ? h('p', { class: kind || 'error', role: 'status' }, text) : '');
}

// A JSON object from a textarea, or an Error naming the problem.
export function parseObject(text) {
  const value = JSON.parse(text.trim() || '{}');
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new Error('variables must be a JSON object');
  }
  return value;
}

// Offers `text` as a file download named `filename`.
export function download(text, filename, type) {
  const link = h('a', { href: URL.createObjectURL(new Blob([text], { type })), download: filename });
  document.body.append(link);
  link.click();
  link.remove();
}
