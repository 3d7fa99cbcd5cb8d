"""OpenTelemetry traces across the API, the engine's steps, jobs and workers (optional).

W3C trace context (``traceparent``, ``tracestate``) rides in NATS message headers, so one trace
follows an instance from the API request that launched it through each engine step, each job
and the worker that ran it (a worker in another language joins by reading ``traceparent`` from
the job message and setting it on its completion command)::

    api instance-start ─► step launch ─► <element> (job, worker) ─► step job-completed ─► ...
                             └ element spans (activated / completed in the step)

Off unless enabled: :func:`configure_from_env` turns it on when a standard ``OTEL_*`` variable
names an exporter (``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``,
or ``OTEL_TRACES_EXPORTER`` other than ``none``) and the ``otel`` extra is installed
(``pip install 'natsflow[otel]'``); tests call :func:`enable` with their own provider. While
off, :func:`span` and :func:`inject` cost a flag test.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

__all__ = ["configure_from_env", "disable", "element_spans", "enable", "enabled", "inject", "span"]

log = logging.getLogger(__name__)

_TRACER: Tracer | None = None
_INSTRUMENTATION = "natsflow"


def enabled() -> bool:
    return _TRACER is not None


def enable(provider: TracerProvider | None = None) -> None:
    """Trace with ``provider`` (None: the global one the OpenTelemetry SDK was given)."""
    from opentelemetry import trace

    global _TRACER
    _TRACER = (provider or trace.get_tracer_provider()).get_tracer(_INSTRUMENTATION)


def disable() -> None:
    global _TRACER
    _TRACER = None


def configure_from_env(service: str, environ: Mapping[str, str] | None = None) -> bool:
    """Export spans by OTLP (HTTP) when the standard ``OTEL_*`` variables ask for it; False when
    they do not, or the ``otel`` extra is missing (logged)."""
    env = os.environ if environ is None else environ
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if exporter == "none" or not (endpoint or exporter):
        return False
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("OTEL_* variables are set but the otel extra is not installed: no traces")
        return False
    attributes = {"service.name": env.get("OTEL_SERVICE_NAME", service)}
    provider = TracerProvider(resource=Resource.create(attributes))  # reads OTEL_RESOURCE_ATTRIBUTES too
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # endpoint etc. from OTEL_*
    enable(provider)
    log.info("exporting traces by OTLP as %s", attributes["service.name"])
    return True


@contextlib.contextmanager
def span(
    name: str, headers: Mapping[str, str] | None = None, attributes: Mapping[str, Any] | None = None
) -> Iterator[Span | None]:
    """A span named ``name``, a child of the trace context in ``headers`` (a received message's)
    or of the current span; current while the block runs. None while tracing is off."""
    tracer = _TRACER
    if tracer is None:
        yield None
        return
    from opentelemetry import propagate

    parent = propagate.extract(headers) if headers and "traceparent" in headers else None
    with tracer.start_as_current_span(name, context=parent, attributes=dict(attributes or {})) as current:
        yield current


def inject(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` with the current trace context added (unchanged while tracing is off)."""
    if _TRACER is not None:
        from opentelemetry import propagate

        propagate.inject(headers)
    return headers


def element_spans(elements: list[tuple[str, str]]) -> None:
    """Children of the current span, one per ``(event, element id)`` a step recorded, named
    after the element (zero length: the step's span carries the time)."""
    tracer = _TRACER
    if tracer is None:
        return
    for event, element in elements:
        tracer.start_span(element, attributes={"natsflow.event": event}).end()
