"""Prometheus metrics fed from the event bus."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ..events import (
    ErrorEvent,
    Event,
    RemoteCall,
    RouteDecided,
    StateChanged,
    ToolCallFinished,
    TurnFinished,
    WakeDetected,
)

__all__ = ["Metrics"]

# Latency buckets, seconds: from a fast-path match (ms) to a remote model (seconds).
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """Counters and histograms of what the assistant does; call it with every event."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.turns = Counter("jarvis_turns_total", "Requests answered, by the route that answered them", ["route"], registry=r)
        self.wakes = Counter("jarvis_wake_detections_total", "Wake words detected", ["model"], registry=r)
        self.remote = Counter("jarvis_remote_calls_total", "Calls to remote models", ["endpoint", "ok"], registry=r)
        self.tools = Counter("jarvis_tool_calls_total", "Tool calls", ["tool", "ok"], registry=r)
        self.errors = Counter("jarvis_errors_total", "Errors reported by a stage", ["stage"], registry=r)
        self.latency = Histogram("jarvis_stage_latency_seconds", "Time per stage per turn", ["stage"], buckets=_BUCKETS, registry=r)
        self.state = Gauge("jarvis_state", "1 for the current state", ["state"], registry=r)
        self._routes: dict[int | None, str] = {}

    def __call__(self, e: Event) -> None:
        if isinstance(e, WakeDetected):
            self.wakes.labels(model=e.model).inc()
        elif isinstance(e, RouteDecided):
            self._routes[e.turn] = e.route
        elif isinstance(e, TurnFinished):
            route = self._routes.pop(e.turn, None)
            if route is not None:
                self.turns.labels(route=route).inc()
        elif isinstance(e, RemoteCall):
            self.remote.labels(endpoint=e.endpoint, ok=str(e.ok).lower()).inc()
        elif isinstance(e, ToolCallFinished):
            self.tools.labels(tool=e.tool, ok=str(e.ok).lower()).inc()
        elif isinstance(e, ErrorEvent):
            self.errors.labels(stage=e.stage).inc()
        elif isinstance(e, StateChanged):
            self.state.clear()
            self.state.labels(state=e.state.value).set(1)

    def turn_finished(self, turn: int | None, ok: bool, timings: dict[str, float]) -> None:
        """A finished turn's stage totals (from :class:`~assistant.engine.timing.TurnTimings`)."""
        for stage, ms in timings.items():
            self.latency.labels(stage=stage).observe(ms / 1000.0)

    def render(self) -> bytes:
        """The Prometheus text exposition format."""
        return generate_latest(self.registry)
