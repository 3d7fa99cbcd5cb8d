// JSON calls to the console's /api and its event streams.

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || { code: 'http_' + status, message: 'HTTP ' + status };
    super(error.message);
    this.status = status;
    this.code = error.code;
    this.details = error.details || null;
  }
}

export async function get(path, params) {
  let url = path;
  if (params) {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) {
      if (value !== undefined && value !== null && value !== '') query.set(key, value);
    }
    const text = query.toString();
    if (text) url += '?' + text;
  }
  const response = await fetch(url, { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
  return decode(response);
}

export async function post(path, body) {
  const response = await fetch(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    credentials: 'same-origin',
    body: JSON.stringify(body || {})
  });
  return decode(response);
}

export async function remove(path) {
  const response = await fetch(path, { method: 'DELETE', headers: { Accept: 'application/json' }, credentials: 'same-origin' });
  return response.status === 204 ? null : decode(response);
}

async function decode(response) {
  if (response.status === 401) {
    window.location.assign('/login');
    throw new ApiError(401, null);
  }
  let body = null;
  try {
    body = await response.json();
  } catch (e) {
    body = null;
  }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

// An EventSource whose handlers get parsed JSON; close() on page change.
export function stream(path, handlers) {
  const source = new EventSource(path);
  for (const [name, handler] of Object.entries(handlers)) {
    source.addEventListener(name, (event) => handler(JSON.parse(event.data)));
  }
  return source;
}
