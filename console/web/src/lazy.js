// Parts of the console built as their own entry points (build.mjs) and fetched when first
// used, with their stylesheet: the modeler (bpmn-js's modeler and the properties panel) and
// form-js. The instance and process pages need neither.

const MODULES = {
  modeler: () => import('./modeler.js'),
  'form-view': () => import('./form-view.js')
};
const loading = new Map();

function stylesheet(name) {
  return new Promise((resolve, reject) => {
    const link = document.createElement('link');
    link.rel = 'stylesheet';
    link.href = '/static/' + name + '.css';
    link.onload = () => resolve();
    link.onerror = () => reject(new Error('cannot load ' + link.href));
    document.head.append(link);
  });
}

export function load(name) {
  if (!loading.has(name)) {
    const ready = Promise.all([MODULES[name](), stylesheet(name)]).then(([module]) => module);
    ready.catch(() => loading.delete(name)); // a later visit tries again
    loading.set(name, ready);
  }
  return loading.get(name);
}

// A page whose code is loaded first: shows "Loading…", then the page; returns its leave().
export function lazyPage(main, name, page, ...args) {
  let left = false;
  let leave = null;
  const note = document.createElement('p');
  note.className = 'note';
  note.textContent = 'Loading…';
  main.replaceChildren(note);
  load(name).then((module) => {
    if (!left) leave = module[page](main, ...args);
  }).catch((error) => {
    if (!left) note.textContent = 'Cannot load this page: ' + error.message;
  });
  return () => {
    left = true;
    if (leave) leave();
  };
}
