// Builds the console's front-end into ../natsflow_console/static (committed). Deterministic:
// the same lockfile and sources give the same bytes (no timestamps, no absolute paths).
// Run: npm ci && node build.mjs   (or scripts/build-console.sh from the repository root)
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', 'natsflow_console', 'static');
mkdirSync(out, { recursive: true });

await build({
  absWorkingDir: here,
  entryPoints: { app: 'src/main.js' },
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['chrome110', 'firefox110', 'safari16'],
  outdir: out,
  legalComments: 'eof',
  charset: 'utf8',
  logLevel: 'warning',
  loader: { '.svg': 'dataurl', '.woff': 'dataurl', '.woff2': 'dataurl', '.ttf': 'dataurl', '.eot': 'dataurl' }
});

for (const page of ['index.html', 'login.html']) copyFileSync(join(here, 'src', page), join(out, page));
