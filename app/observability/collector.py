"""The ``/metrics`` exposition: Proxboard's records as Prometheus metrics, read at scrape time.

``DatabaseCollector`` turns ``services`` (a few aggregate queries, no Proxmox call) into metric
families each time Prometheus scrapes, so every gunicorn worker answers with the same numbers.
``exposition`` adds the process-local instruments (Proxmox call latency and errors, from
``app.proxmox.telemetry``, and the process's own CPU and memory), or, with
``PROMETHEUS_MULTIPROC_DIR`` set, those of every process writing to that folder.
"""
from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from . import services


class DatabaseCollector(Collector):
    """Gauges and counters read from the database at each scrape (call ``collect`` in an app context)."""

    def collect(self) -> Iterator[Metric]:
        """The metric families; see the README's "Prometheus" section for their meaning."""
        containers = services.container_counts()
        by_status = GaugeMetricFamily(
            "proxboard_containers", "Containers by node and the status the dashboard shows (running, stopped, "
            "paused, locked, template, creating, error, gone, unknown), as last recorded from Proxmox, by cluster.",
            labels=["cluster", "node", "status"])
        for (cluster, node, status), number in sorted(containers.by_node_status.items()):
            by_status.add_metric([cluster, node, status], number)
        yield by_status
        recorded = GaugeMetricFamily(
            "proxboard_inventory_recorded_timestamp_seconds",
            "When the container statuses above were recorded from Proxmox (Unix time); absent before the first.")
        if containers.recorded_at is not None:
            recorded.add_metric([], containers.recorded_at.timestamp())
        yield recorded

        service_states = GaugeMetricFamily(
            "proxboard_services", "Application services inside containers by health status (unknown while their "
            "container is not running).", labels=["status"])
        for status, number in sorted(services.service_counts().items()):
            service_states.add_metric([status], number)
        yield service_states

        yield from _operations(services.operation_stats())

        incidents = GaugeMetricFamily(
            "proxboard_alert_incidents", "Alert incidents not resolved yet, by rule kind and state (pending: its "
            "condition holds but not for long enough yet; open: notified).", labels=["kind", "state"])
        for (kind, state), number in sorted(services.incident_counts().items()):
            incidents.add_metric([kind, state], number)
        yield incidents

        length = services.queue_length()
        if length is not None:
            yield GaugeMetricFamily("proxboard_job_queue_length",
                                    "Jobs waiting in the queue for a worker (provisioning, services refreshes…).",
                                    value=length)


def _operations(stats: list[services.OperationStats]) -> Iterator[Metric]:
    finished = CounterMetricFamily(
        "proxboard_operations", "Operations that ended (lifecycle actions, provisioning, services refreshes, "
        "backups…), by action and outcome (succeeded, failed).", labels=["action", "outcome"])
    pending = GaugeMetricFamily(
        "proxboard_operations_pending", "Operations under way, by action and state (queued, running).",
        labels=["action", "state"])
    durations = HistogramMetricFamily(
        "proxboard_operation_duration_seconds", "Seconds from request to end of the operations that ended, by "
        "action and outcome.", labels=["action", "outcome"])
    for stat in stats:
        if stat.state in services.FINISHED:
            finished.add_metric([stat.action, stat.state], stat.count)
            buckets = [(floatToGoString(bound), number)
                       for bound, number in zip(services.OPERATION_BUCKETS, stat.buckets)]
            durations.add_metric([stat.action, stat.state], buckets + [("+Inf", stat.count)], stat.total)
        else:
            pending.add_metric([stat.action, stat.state], stat.count)
    yield from (finished, pending, durations)


class _Chained(Collector):
    """Several collectors exposed as one registry's (the process-local ones, then the database's)."""

    def __init__(self, *collectors) -> None:
        self._collectors = collectors

    def collect(self) -> Iterator[Metric]:
        for collector in self._collectors:
            yield from collector.collect()


def exposition(accept: str | None) -> tuple[bytes, str]:
    """The scrape's body and content type for a request's ``Accept`` header (the Prometheus text format,
    or OpenMetrics when asked for). Runs ``DatabaseCollector`` now: call it in an app context."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        local = CollectorRegistry(auto_describe=False)
        multiprocess.MultiProcessCollector(local)  # every process's telemetry, added up from its files
    else:
        local = REGISTRY
    registry.register(_Chained(local, DatabaseCollector()))
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
