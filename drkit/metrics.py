"""The scheduler's Prometheus metrics and its /metrics + /healthz HTTP endpoint.

Metrics live in their own CollectorRegistry (not prometheus_client's global one), so tests
and several services in one process never mix. The endpoint is a tiny WSGI app served by
wsgiref in a daemon thread; bind 127.0.0.1 unless told otherwise (the metrics name resources).

    drkit_job_runs_total{kind,schedule,resource,status}     counter
    drkit_job_duration_seconds{kind}                          histogram
    drkit_last_success_timestamp_seconds{kind,schedule,resource}
    drkit_recovery_points{resource,region,kind}               from the catalog, each tick
    drkit_rpo_exposure_seconds{resource}                      now - newest recovery point (or its watermark)
    drkit_leader                                              1 on the replica that runs jobs

Alert on `drkit_rpo_exposure_seconds > <target>` and on `time() - drkit_last_success... > ...`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger("drkit.metrics")

DEFAULT_PORT = 9187
DEFAULT_ADDR = "127.0.0.1"


class Metrics:
    """Every metric the scheduler exports, in one dedicated registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.job_runs = Counter(
            "drkit_job_runs", "Scheduled job runs by outcome", ["kind", "schedule", "resource", "status"], registry=r
        )
        self.job_duration = Histogram(
            "drkit_job_duration_seconds",
            "Wall time of scheduled job runs",
            ["kind"],
            buckets=(1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400, float("inf")),
            registry=r,
        )
        self.last_success = Gauge(
            "drkit_last_success_timestamp_seconds",
            "Unix time the job last succeeded",
            ["kind", "schedule", "resource"],
            registry=r,
        )
        self.recovery_points = Gauge(
            "drkit_recovery_points", "Recovery points in the catalog", ["resource", "region", "kind"], registry=r
        )
        self.rpo_exposure = Gauge(
            "drkit_rpo_exposure_seconds",
            "Now minus the newest recovery point's data time (watermark, else creation)",
            ["resource"],
            registry=r,
        )
        self.leader = Gauge("drkit_leader", "1 if this replica is the scheduler leader", registry=r)

    def record_run(self, kind: str, schedule: str, resource: str | None, status: str, seconds: float,
                   finished_at: datetime) -> None:  # fmt: skip
        self.job_runs.labels(kind, schedule, resource or "", status).inc()
        self.job_duration.labels(kind).observe(seconds)
        if status == "ok":
            self.last_success.labels(kind, schedule, resource or "").set(finished_at.timestamp())

    def set_recovery_points(self, points: Iterable[Any], now: datetime) -> None:
        """Replace the recovery-point gauges from catalog records (RecoveryPointRecord-like)."""
        counts: dict[tuple[str, str, str], int] = {}
        newest: dict[str, datetime] = {}
        for p in points:
            label = (p.resource, p.region or "local", p.kind)
            counts[label] = counts.get(label, 0) + 1
            data_time = p.watermark_at or p.created_at
            if p.resource not in newest or data_time > newest[p.resource]:
                newest[p.resource] = data_time
        self.recovery_points.clear()
        for (resource, region, kind), n in counts.items():
            self.recovery_points.labels(resource, region, kind).set(n)
        self.rpo_exposure.clear()
        for resource, at in newest.items():
            self.rpo_exposure.labels(resource).set(max(0.0, (now - at).total_seconds()))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics http: " + format, *args)


def wsgi_app(metrics: Metrics, healthy: Callable[[], tuple[bool, str]]) -> Callable[..., Iterable[bytes]]:
    """/metrics (Prometheus text format) and /healthz (200 "ok" or 503 with the reason)."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            body = metrics.exposition()
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
            return [body]
        if path in ("/healthz", "/health"):
            ok, reason = healthy()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [(reason + "\n").encode()]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: try /metrics or /healthz\n"]

    return app


class MetricsServer:
    """The HTTP endpoint in a daemon thread. `port=0` is not "off" here: callers skip starting it."""

    def __init__(self, metrics: Metrics, healthy: Callable[[], tuple[bool, str]], addr: str, port: int) -> None:
        self._server: WSGIServer = make_server(addr, port, wsgi_app(metrics, healthy), handler_class=_QuietHandler)
        self.addr, self.port = addr, self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="drkit-metrics", daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics (health: /healthz)", self.addr, self.port)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
