// The console's single page: a hash router over the pages; the login page's token fragment.

import 'bpmn-js/dist/assets/diagram-js.css';
import './app.css';
import { get } from './api.js';
import { h } from './dom.js';
import { incidentsPage } from './incidents.js';
import { instancePage } from './instance.js';
import { instancesPage } from './instances.js';
import { lazyPage } from './lazy.js';
import { processPage, processesPage } from './processes.js';
import { tasksPage } from './tasks.js';

function login() {
  const params = new URLSearchParams(window.location.search);
  if (params.get('failed')) document.getElementById('login-failed').hidden = false;
  // `natsflow dev` prints a URL with the token after '#': it never reaches a server log.
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  const token = fragment.get('token');
  if (token) {
    history.replaceState(null, '', '/login');
    document.getElementById('token').value = token;
    document.getElementById('login-form').submit();
  }
}

async function app() {
  const main = document.getElementById('main');
  const user = await get('/api/me');
  document.getElementById('who').textContent = user.name + ' · tenant ' + user.tenant + (user.role === 'viewer' ? ' · read-only' : '');
  document.body.dataset.role = user.role;
  let leave = null;
  const route = () => {
    if (leave) leave();
    leave = null;
    const hash = window.location.hash.slice(1) || '/instances';
    const [path, query] = hash.split('?');
    const params = new URLSearchParams(query || '');
    const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    for (const link of document.querySelectorAll('[data-nav]')) link.classList.toggle('active', link.dataset.nav === parts[0]);
    if (parts[0] === 'instances' && parts[1]) leave = instancePage(main, parts[1], user);
    else if (parts[0] === 'processes' && parts[1]) leave = processPage(main, parts[1], params);
    else if (parts[0] === 'processes') leave = processesPage(main, user);
    else if (parts[0] === 'incidents') leave = incidentsPage(main, user);
    else if (parts[0] === 'tasks') leave = tasksPage(main, user, params);
    else if (parts[0] === 'modeler') leave = lazyPage(main, 'modeler', 'modelerPage', user, params);
    else if (parts[0] === 'instances') leave = instancesPage(main, params);
    else main.replaceChildren(h('p', { class: 'error' }, 'No page at ' + hash));
  };
  window.addEventListener('hashchange', route);
  route();
}

if (document.body.dataset.page === 'login') login();
else app();
