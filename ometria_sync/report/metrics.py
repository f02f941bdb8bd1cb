"""Metrics in the conventions of batch jobs: a Prometheus textfile for node_exporter's textfile
collector, and optionally a push to a Pushgateway, once at the end of each run.

Metric names (label ``stream`` on all but the last two):

* ``ometria_sync_records_total{stream,kind}``: kind = read, valid, unchanged, filtered (skipped
  by the stream's transform), sent, accepted, rejected, unconfirmed (answered ``skipped``),
  dead_lettered
* ``ometria_sync_requests_total{stream,status}``: requests by HTTP status (``network`` for
  timeouts and resets)
* ``ometria_sync_retries_total{stream}``, ``ometria_sync_throttled_total{stream}``
* ``ometria_sync_duration_seconds{stream}``
* ``ometria_sync_last_run_exit_code``, ``ometria_sync_last_run_timestamp_seconds``
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile

from ometria_sync.report.run_report import RunReport

_KINDS = ("read", "valid", "unchanged", "filtered", "sent", "accepted", "rejected",
          "unconfirmed", "dead_lettered")


def build_registry(report: RunReport, job: str) -> CollectorRegistry:
    registry = CollectorRegistry()
    records = Gauge("ometria_sync_records_total", "Records by what happened to them",
                    ["job", "stream", "kind"], registry=registry)
    requests = Gauge("ometria_sync_requests_total", "Push requests by answer",
                     ["job", "stream", "status"], registry=registry)
    retries = Gauge("ometria_sync_retries_total", "Retried requests", ["job", "stream"],
                    registry=registry)
    throttled = Gauge("ometria_sync_throttled_total", "429 answers", ["job", "stream"],
                      registry=registry)
    duration = Gauge("ometria_sync_duration_seconds", "Stream duration", ["job", "stream"],
                     registry=registry)
    for s in report.streams:
        for kind in _KINDS:
            records.labels(job, s.stream, kind).set(getattr(s, kind))
        for status, count in s.requests_by_status.items():
            requests.labels(job, s.stream, status).set(count)
        retries.labels(job, s.stream).set(s.retries)
        throttled.labels(job, s.stream).set(s.throttled)
        duration.labels(job, s.stream).set(s.duration_seconds)
    Gauge("ometria_sync_last_run_exit_code", "Exit code of the last run", ["job"],
          registry=registry).labels(job).set(report.exit_code)
    Gauge("ometria_sync_last_run_timestamp_seconds", "When the last run ended", ["job"],
          registry=registry).labels(job).set(time.time())
    return registry


def export_metrics(
    report: RunReport, job: str, *, textfile: str | None, pushgateway: str | None
) -> None:
    """Write the textfile (atomically, as node_exporter expects) and/or push to a gateway."""
    registry = build_registry(report, job)
    if textfile:
        Path(textfile).parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(textfile, registry)
        os.chmod(textfile, 0o644)
    if pushgateway:
        push_to_gateway(pushgateway, job="ometria_sync", registry=registry,
                        grouping_key={"sync_job": job})
