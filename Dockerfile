# syntax=docker/dockerfile:1.7
# One image for every natsflow component:
#   natsflow engine | operator | trigger-server | worker <module:app> | console | dev | demo
# Build:  docker build -t natsflow:0.1.0 .
# A worker image with your task handlers: see docs/install.md ("Worker images").

ARG PYTHON_VERSION=3.11

# ---- builder: wheels of natsflow and every dependency (operator + fast extras) ----------------
FROM python:${PYTHON_VERSION}-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Only what the package is built from (pyproject's package roots: src/, engine/, operator/,
# console/: .dockerignore lets in only its package, which carries the built front-end).
# README.m[d] is optional (pyproject's readme): a pattern that matches nothing is not an error
# as long as another source of the same COPY exists.
COPY pyproject.toml README.m[d] ./
COPY src/ src/
COPY engine/ engine/
COPY operator/ operator/
COPY console/ console/
RUN pip wheel --wheel-dir /wheels ".[operator,fast]"
# The demo's example (`natsflow demo` looks for examples/order-fulfilment in its working directory).
COPY examples/order-fulfilment/ examples/order-fulfilment/

# ---- runtime: python slim, wheels only, no compiler, no package manager caches ---------------
FROM python:${PYTHON_VERSION}-slim AS runtime
ARG NATSFLOW_UID=10001
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    NATSFLOW_HEALTH_PORT=8080 \
    NATSFLOW_LOG_FORMAT=json
RUN groupadd --system --gid ${NATSFLOW_UID} natsflow \
 && useradd --system --uid ${NATSFLOW_UID} --gid natsflow --home-dir /home/natsflow --create-home \
      --shell /usr/sbin/nologin natsflow
# The wheels arrive through a bind mount: they never become a layer of the final image.
# Versions are pinned by the wheels themselves (--no-index: nothing else can be installed).
# hadolint ignore=DL3013
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels "natsflow[operator,fast]" \
 && natsflow --help >/dev/null \
 && nats-server --version
WORKDIR /home/natsflow
COPY --from=builder /src/examples/order-fulfilment/ examples/order-fulfilment/
USER 10001:10001
EXPOSE 8080
# Kubernetes uses the chart's probes; this is for `docker run` and compose. No curl in slim: python.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('NATSFLOW_HEALTH_PORT', '8080'), timeout=4)"]
ENTRYPOINT ["natsflow"]
CMD ["--help"]
