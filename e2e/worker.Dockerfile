# Worker image for the e2e suite, built with examples/ as its context:
#   docker build -f e2e/worker.Dockerfile --build-arg BASE=natsflow:e2e -t natsflow-worker:e2e examples
# The same pattern as docs/install.md ("Worker images"): FROM the natsflow image, add task modules.
ARG BASE=natsflow:e2e
FROM ${BASE}
USER 0
COPY . /app/examples/
# Every folder of examples/ that holds Python files (for a package: the folder above it) goes on
# sys.path (a .pth file), so a TaskDefinition's `module: workers:app` or `tasks.payments:app`
# imports whichever example folder it comes from (the rule of e2e/e2e_offline.worker_paths).
RUN python -c "import pathlib, site; root = pathlib.Path('/app/examples'); \
top = lambda d: top(d.parent) if (d / '__init__.py').exists() else d; \
dirs = sorted({str(top(p.parent)) for p in root.rglob('*.py')} | {str(root)}); \
pathlib.Path(site.getsitepackages()[0], 'natsflow-examples.pth').write_text('\n'.join(dirs) + '\n')"
WORKDIR /app
USER 10001:10001
