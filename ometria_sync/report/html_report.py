"""The HTML report of one run: a single self-contained file that opens with no network.

What it shows, top to bottom: the run (job, id, times, exit code); the request rate over the
run against the limit, with 429s and retries on the same time axis; the records of each stream
by outcome; the top refusal reasons, each with an example; and the trend of the last 30 runs
(sent, refused, duration). The charts are inline SVG drawn in Python (``charts.py`` says why);
the page has no script, and its Content-Security-Policy lets nothing load.
"""

from __future__ import annotations

import datetime as dt
import os
from html import escape
from pathlib import Path

from ometria_sync.report.charts import Axis, stacked_bar, svg
from ometria_sync.report.history import RunSummary, summarize
from ometria_sync.report.run_report import RunReport, StreamReport

#: runs the trend shows
TREND_RUNS = 30
#: bars the rate charts draw at most: a longer run's buckets are summed into wider ones (a
#: bar narrower than a pixel shows nothing, and would only add to the page's size)
MOST_BARS = 360
#: parts of a stream's bar, in order, and the report field each counts
OUTCOME_PARTS = (("accepted", "accepted"), ("rejected", "rejected"),
                 ("unconfirmed", "unconfirmed"), ("unchanged", "unchanged"),
                 ("dead-lettered", "dead_lettered"))

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:820px}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse}td,th{padding:2px 8px;text-align:left;border-bottom:1px solid #ddd}
td.n{text-align:right}.grid{stroke:#eee}.tick,.unit{font-size:11px;fill:#555}
.requests{fill:#4a7bd0}.limit{stroke:#c0392b;stroke-dasharray:6 4}
.limit-label{fill:#c0392b;font-size:11px}
.throttled{fill:#c0392b}.retries{fill:#e6a23c}.sent{fill:#4a7bd0}.refused{fill:#c0392b}
.duration{fill:none;stroke:#333;stroke-width:1.5}
.part-accepted{fill:#3c9d5d}.part-rejected{fill:#c0392b}.part-unconfirmed{fill:#e6a23c}
.part-unchanged{fill:#b9c3cf}.part-dead-lettered{fill:#8e44ad}
.key span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}
figcaption{font-size:13px;color:#444}
"""


def _merged_timeline(report: RunReport) -> tuple[int, list[int], list[int], list[int]]:
    """The streams' timelines on one axis (from the earliest first request), in buckets of
    the widest stream's size, summed further to at most MOST_BARS: (bucket seconds,
    requests, 429s, retries)."""
    lines = [s.timeline for s in report.streams if s.timeline is not None]
    if not lines:
        return 1, [], [], []
    starts = [dt.datetime.fromisoformat(t.started_at) for t in lines]
    origin = min(starts)
    bucket = max(t.bucket_seconds for t in lines)
    series: dict[str, list[int]] = {"requests": [], "throttled": [], "retries": []}
    for line, start in zip(lines, starts, strict=True):
        offset = (start - origin).total_seconds()
        for name, merged in series.items():
            for i, count in enumerate(getattr(line, name)):
                index = int((offset + i * line.bucket_seconds) // bucket)
                if len(merged) <= index:
                    merged.extend([0] * (index + 1 - len(merged)))
                merged[index] += count
    size = max(len(v) for v in series.values())
    for merged in series.values():
        merged.extend([0] * (size - len(merged)))
    group = -(-size // MOST_BARS)  # ceil: buckets drawn as one bar
    if group > 1:
        for name, merged in series.items():
            series[name] = [sum(merged[i:i + group]) for i in range(0, size, group)]
    return bucket * group, series["requests"], series["throttled"], series["retries"]


def _rate_charts(report: RunReport) -> str:
    bucket, requests, throttled, retries = _merged_timeline(report)
    limit = max((s.rate_limit for s in report.streams), default=0.0)
    if not requests:
        return "<p id='no-requests'>No request was sent in this run.</p>"
    per_second = [n / bucket for n in requests]
    peak = max(per_second)
    axis = Axis(slots=len(requests), top=max(peak, limit) * 1.15, height=180)
    body = (axis.frame("requests/s") + axis.bars(per_second, "requests", label="second")
            + axis.level(limit, "limit", f"limit {limit:g}/s") + axis.time_ticks(bucket))
    total = sum(requests)
    rate = svg("chart-rate", 212, body, {"requests": total, "limit": f"{limit:g}",
                                        "peak": f"{peak:g}", "bucket-seconds": bucket},
               f"Requests per second against the limit of {limit:g}")
    low = Axis(slots=len(requests), top=max(max(throttled), max(retries), 1) * 1.15, height=90)
    body = (low.frame("per bucket") + low.bars(throttled, "throttled", share=0.5, label="429s")
            + low.bars(retries, "retries", offset=0.5, share=0.5, label="retries")
            + low.time_ticks(bucket))
    errors = svg("chart-throttling", 122, body,
                 {"throttled": sum(throttled), "retries": sum(retries)},
                 "429 answers and retries over the run")
    return (f"<figure>{rate}<figcaption id='caption-rate'>{total} requests in buckets of "
            f"{bucket} s; peak {peak:g}/s against the limit of {limit:g}/s</figcaption></figure>"
            f"<figure>{errors}<figcaption id='caption-throttling' class='key'><span "
            f"style='background:#c0392b'></span>{sum(throttled)} answered 429"
            f"<span style='background:#e6a23c'></span>{sum(retries)} retries</figcaption>"
            "</figure>")


def _outcomes(report: RunReport) -> str:
    rows = [(s.stream, [(part, getattr(s, attr)) for part, attr in OUTCOME_PARTS])
            for s in report.streams]
    chart = stacked_bar(rows, "chart-outcomes", "Records by outcome, per stream")
    colours = {"accepted": "#3c9d5d", "rejected": "#c0392b", "unconfirmed": "#e6a23c",
               "unchanged": "#b9c3cf", "dead-lettered": "#8e44ad"}
    key = "".join(f"<span style='background:{colours[p]}'></span>{p}" for p, _ in OUTCOME_PARTS)
    table = "".join(
        f"<tr><td>{escape(s.stream)}</td><td>{escape(s.outcome)}</td>"
        + "".join(f"<td class='n'>{n}</td>" for n in (s.read, s.sent, *(
            getattr(s, a) for _, a in OUTCOME_PARTS)))
        + "</tr>" for s in report.streams)
    heads = "".join(f"<th>{h}</th>" for h in ("stream", "outcome", "read", "sent",
                                              *(p for p, _ in OUTCOME_PARTS)))
    return (f"<figure>{chart}<figcaption class='key'>{key}</figcaption></figure>"
            f"<table id='outcomes'><tr>{heads}</tr>{table}</table>")


def _refusals(streams: list[StreamReport], top: int = 10) -> str:
    reasons = sorted(((count, s.stream, reason, s.refused_examples.get(reason, ""))
                      for s in streams for reason, count in s.refused_reasons.items()),
                     key=lambda r: (-r[0], r[1], r[2]))[:top]
    if not reasons:
        return "<p id='refusals'>No record was refused.</p>"
    rows = "".join(f"<tr><td class='n'>{n}</td><td>{escape(stream)}</td>"
                   f"<td>{escape(reason)}</td><td><code>{escape(example)}</code></td></tr>"
                   for n, stream, reason, example in reasons)
    return ("<table id='refusals'><tr><th>count</th><th>stream</th><th>reason</th>"
            f"<th>example</th></tr>{rows}</table>")


def _trend(runs: list[RunSummary]) -> str:
    runs = runs[-TREND_RUNS:]
    if not runs:
        return "<p id='trend'>No earlier run is recorded.</p>"
    top = max(max(r.sent, r.refused) for r in runs)
    axis = Axis(slots=len(runs), top=top * 1.15 or 1, height=140)
    marks = []
    for i, run in enumerate(runs):
        data = {"run-id": run.run_id, "sent": run.sent, "refused": run.refused,
                "duration": f"{run.duration_seconds:g}", "outcome": run.outcome}
        attrs = "".join(f' data-{k}="{escape(str(v))}"' for k, v in data.items())
        marks.append(f'<g class="run"{attrs}><title>{escape(run.started_at)} '
                     f"{escape(run.outcome)}: {run.sent} sent, {run.refused} refused, "
                     f"{run.duration_seconds:g} s</title>"
                     + axis.bars([0] * i + [run.sent], "sent", share=0.45, label="sent")
                     + axis.bars([0] * i + [run.refused], "refused", offset=0.45, share=0.45,
                                 label="refused") + "</g>")
    longest = max(r.duration_seconds for r in runs) or 1.0
    seconds = Axis(slots=len(runs), top=longest * 1.15, height=140)
    line = seconds.polyline([r.duration_seconds for r in runs], "duration")
    body = axis.frame("records") + "".join(marks) + line
    chart = svg("chart-trend", 172, body, {"runs": len(runs)},
                f"The last {len(runs)} runs: sent, refused and duration")
    return (f"<figure>{chart}<figcaption class='key'><span style='background:#4a7bd0'></span>"
            f"sent<span style='background:#c0392b'></span>refused<span "
            f"style='background:#333;height:2px'></span>duration (longest {longest:g} s)"
            "</figcaption></figure>")


def render_html(report: RunReport, history: list[RunReport]) -> str:
    """The page for ``report``; ``history`` is the job's runs (any order; this one included
    or not) for the trend, which leaves dry runs out (but this one)."""
    runs = {r.run_id: r for r in history if not r.dry_run}
    runs[report.run_id] = report
    trend = sorted((summarize(r) for r in runs.values()), key=lambda s: s.started_at)
    run = summarize(report)
    facts = (("job", report.job), ("run", report.run_id), ("started", report.started_at),
             ("finished", report.finished_at), ("outcome", run.outcome),
             ("exit code", str(report.exit_code)), ("seconds", f"{run.duration_seconds:g}"),
             ("error", report.error or ""))
    head = "".join(f"<tr><th>{k}</th><td id='run-{k.replace(' ', '-')}'>{escape(v)}</td></tr>"
                   for k, v in facts if v)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "style-src 'unsafe-inline'\">"
        f"<title>ometria-sync run {escape(report.run_id)}</title><style>{_CSS}</style></head>"
        f"<body><h1>ometria-sync: run {escape(report.run_id)}</h1><table>{head}</table>"
        f"<h2>Request rate against the limit</h2>{_rate_charts(report)}"
        f"<h2>Records by outcome</h2>{_outcomes(report)}"
        f"<h2>Why records were refused</h2>{_refusals(report.streams)}"
        f"<h2>The last {min(len(trend), TREND_RUNS)} runs</h2>{_trend(trend)}"
        "</body></html>\n")


def write_html(report: RunReport, history: list[RunReport], path: str | Path) -> Path:
    """Write the page (mode 0600, as the JSON report) and return its path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(render_html(report, history))
    return out
