// Builds the console's front-end into ../natsflow_console/static (committed). Deterministic:
// the same lockfile and sources give the same bytes (no timestamps, no absolute paths).
// Run: npm ci && node build.mjs   (or scripts/build-console.sh from the repository root)
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', 'natsflow_console', 'static');
mkdirSync(out, { recursive: true });
// chunk names change with their content: drop the previous build's scripts and stylesheets
for (const file of readdirSync(out)) if (/\.(js|css)$/.test(file)) rmSync(join(out, file));

await build({
  absWorkingDir: here,
  // the pages' code, and what only some pages need, fetched when used (src/lazy.js)
  // (a lazily loaded part's stylesheet is an entry of its own: CSS imported from its script
  // would be bundled into app.css)
  entryPoints: [
    { out: 'app', in: 'src/main.js' },
    { out: 'modeler', in: 'src/modeler.js' },
    { out: 'modeler', in: 'src/modeler.css' },
    { out: 'form-view', in: 'src/form-view.js' },
    { out: 'form-view', in: 'src/form-view.css' }
  ],
  bundle: true,
  splitting: true,
  chunkNames: 'chunk-[hash]',
  minify: true,
  format: 'esm',
  target: ['chrome110', 'firefox110', 'safari16'],
  outdir: out,
  legalComments: 'eof',
  charset: 'utf8',
  logLevel: 'warning',
  loader: { '.svg': 'dataurl', '.woff': 'dataurl', '.woff2': 'dataurl', '.ttf': 'dataurl', '.eot': 'dataurl' }
});

for (const page of ['index.html', 'login.html']) copyFileSync(join(here, 'src', page), join(out, page));
