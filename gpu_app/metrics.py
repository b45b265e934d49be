"""Prometheus metrics, one registry per app instance (tests build many apps in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.images = Counter("images_processed", "Images processed", ["status"], registry=self.registry)
        self.faces = Counter("faces_detected", "Faces detected and embedded", registry=self.registry)
        self.inference = Histogram(
            "inference_duration_seconds",
            "Detection + recognition time per model batch",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge("job_queue_depth", "Async jobs waiting", registry=self.registry)
        self.jobs_running = Gauge("jobs_in_progress", "Async jobs running", registry=self.registry)
        self.index_pending = Gauge(
            "index_pending_images",
            "Stored images whose vectors wait for an index retry",
            registry=self.registry,
        )
