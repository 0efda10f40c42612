"""OpenTelemetry tracing, reconfigured live from the runtime config (DESIGN §3, §7).

The backend's commit starts a trace and puts `traceparent` in the envelope; the gateway
continues it with a receive span and a fan-out span per envelope, and (sampled at the
configured ratio) short spans for connection lifecycle events. A new runtime config builds a
new provider and swaps it in; spans already started finish on the old one, which is flushed
and shut down in the background. Sockets are never touched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gamesync import __version__
from gamesync.envelope import Envelope, add_field, envelope_json
from gamesync.errors import ConfigError
from gamesync.runtime_config import TracingConfig

__all__ = ["Tracing", "inject_traceparent", "publish_span"]

log = logging.getLogger("gamesync.tracing")

PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])


def _sampler(config: TracingConfig) -> Sampler:
    ratio = TraceIdRatioBased(config.ratio)
    return {
        "always_on": ALWAYS_ON,
        "always_off": ALWAYS_OFF,
        "traceidratio": ratio,
        "parentbased_always_on": ParentBased(ALWAYS_ON),
        "parentbased_always_off": ParentBased(ALWAYS_OFF),
        "parentbased_traceidratio": ParentBased(ratio),
    }[config.sampler.value]


def _exporter(config: TracingConfig) -> Any:
    if config.protocol != "http/protobuf":
        raise ConfigError(f"OTLP protocol {config.protocol!r} is not supported; use http/protobuf")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=config.endpoint.rstrip("/") + "/v1/traces", timeout=5)


def inject_traceparent(carrier: dict[str, str] | None = None) -> dict[str, str]:
    """W3C headers for the current context (used by publishers to fill `traceparent`)."""
    headers: dict[str, str] = {} if carrier is None else carrier
    PROPAGATOR.inject(headers)
    return headers


@contextlib.contextmanager
def publish_span(
    envelope: Envelope, provider: trace.TracerProvider | None = None
) -> Iterator[Envelope]:
    """For publishers: a PRODUCER span around one publish, continuing the caller's trace.

    Yields the envelope to send. One that already carries a `traceparent` is sent untouched
    (the span continues that trace); otherwise the publish span's own context is stamped in,
    so the gateways' spans join the backend's trace. With no tracer provider configured (the
    backend does not trace) the span is a no-op and nothing is stamped.
    """
    tracer = trace.get_tracer("gamesync.publisher", __version__, tracer_provider=provider)
    parent = (
        PROPAGATOR.extract({"traceparent": envelope.traceparent}) if envelope.traceparent else None
    )
    attributes: dict[str, Any] = {
        "gamesync.game_id": envelope.game_id,
        "gamesync.game_version": envelope.version,
        "messaging.system": "gamesync",
        "messaging.operation": "publish",
    }
    with tracer.start_as_current_span(
        "gamesync.publish", context=parent, kind=SpanKind.PRODUCER, attributes=attributes
    ):
        if envelope.traceparent:
            yield envelope
            return
        traceparent = inject_traceparent().get("traceparent")
        if not traceparent:
            yield envelope
            return
        raw = add_field(envelope_json(envelope), "traceparent", traceparent)
        yield dataclasses.replace(envelope, traceparent=traceparent, raw=raw)


class Tracing:
    """The gateway's tracer, swapped atomically when the runtime config changes."""

    def __init__(self, *, pod: str, service_name: str = "gamesync-gateway") -> None:
        self.pod = pod
        self.service_name = service_name
        self.enabled = False
        self.config: TracingConfig | None = None
        self._provider: TracerProvider | None = None
        self._tracer: trace.Tracer = trace.NoOpTracer()

    def apply(self, config: TracingConfig) -> None:
        """Install `config`; raises ConfigError (the caller keeps the previous config)."""
        if config == self.config:
            return
        old = self._provider
        if not config.enabled:
            self._provider = None
            self._tracer = trace.NoOpTracer()
            self.enabled = False
        else:
            resource = Resource.create(
                {
                    "service.name": self.service_name,
                    "service.version": __version__,
                    "service.instance.id": self.pod,
                    "k8s.pod.name": self.pod,
                    **config.resource_attributes,
                }
            )
            provider = TracerProvider(resource=resource, sampler=_sampler(config))
            provider.add_span_processor(
                BatchSpanProcessor(_exporter(config), schedule_delay_millis=500)
            )
            self._provider = provider
            self._tracer = provider.get_tracer("gamesync", __version__)
            self.enabled = True
        self.config = config
        if old is not None:
            threading.Thread(target=old.shutdown, name="otel-shutdown", daemon=True).start()
        log.info(
            "tracing %s",
            f"on: {config.endpoint}, {config.sampler.value} {config.ratio}"
            if config.enabled
            else "off",
        )

    def flush(self, timeout_millis: int = 5000) -> None:
        if self._provider is not None:
            self._provider.force_flush(timeout_millis)

    def shutdown(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()
            self._provider = None
        self._tracer = trace.NoOpTracer()
        self.enabled = False

    # spans -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def fanout(self, envelope: Envelope, local_subscribers: int) -> Iterator[trace.Span]:
        """Receive + fan-out spans for one envelope, continuing its `traceparent`."""
        parent = (
            PROPAGATOR.extract({"traceparent": envelope.traceparent})
            if envelope.traceparent
            else otel_context.Context()
        )
        attributes: dict[str, Any] = {
            "gamesync.game_id": envelope.game_id,
            "gamesync.game_version": envelope.version,
            "messaging.system": "gamesync",
            "messaging.operation": "receive",
        }
        if envelope.published_at is not None:
            attributes["gamesync.broker_lag_ms"] = max(
                0.0, (time.time() - envelope.published_at) * 1000
            )
        with (
            self._tracer.start_as_current_span(
                "gamesync.receive", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
            ),
            self._tracer.start_as_current_span(
                "gamesync.fanout",
                attributes={
                    "gamesync.game_id": envelope.game_id,
                    "gamesync.game_version": envelope.version,
                    "gamesync.local_subscribers": local_subscribers,
                },
            ) as span,
        ):
            yield span

    def event(self, name: str, attributes: dict[str, Any], *, error: bool = False) -> None:
        """A short root span for a connection lifecycle event (sampled by ratio)."""
        if not self.enabled:
            return
        span = self._tracer.start_span(
            f"gamesync.{name}",
            context=otel_context.Context(),
            kind=SpanKind.SERVER,
            attributes=attributes,
        )
        if error:
            span.set_status(Status(StatusCode.ERROR))
        span.end()
