"""What a person sees about a run: live progress, the end-of-run report (JSON, and HTML
with charts), the run history, the health rules, and metrics."""

from ometria_sync.report.health import Health, HealthRules, judge
from ometria_sync.report.history import (
    HISTORY_HEADERS,
    RunSummary,
    decode_reports,
    history_rows,
    summarize,
)
from ometria_sync.report.html_report import TREND_RUNS, render_html, write_html
from ometria_sync.report.metrics import export_metrics
from ometria_sync.report.progress import show_progress
from ometria_sync.report.run_report import (
    RunReport,
    group_ometria_errors,
    shared_budget_report,
    stream_report,
    write_report,
)

__all__ = [
    "HISTORY_HEADERS",
    "TREND_RUNS",
    "Health",
    "HealthRules",
    "RunReport",
    "RunSummary",
    "decode_reports",
    "export_metrics",
    "group_ometria_errors",
    "history_rows",
    "judge",
    "render_html",
    "shared_budget_report",
    "show_progress",
    "stream_report",
    "summarize",
    "write_html",
    "write_report",
]
