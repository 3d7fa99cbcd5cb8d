#!/usr/bin/env bash
# Rebuilds the console's front-end (console/natsflow_console/static, committed) from
# console/web: `npm ci` installs exactly what package-lock.json lists, esbuild bundles.
# The output is deterministic: .ci/run rebuilds it and fails when it differs from git.
set -euo pipefail
cd "$(dirname "$0")/../console/web"
npm ci --no-audit --no-fund --ignore-scripts
node build.mjs
