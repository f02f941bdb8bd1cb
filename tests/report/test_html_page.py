"""The HTML page's size and figures without a browser: a ten-hour run stays small, and its
drawn totals are the report's."""

from __future__ import annotations

import re

from ometria_sync.pipeline.stats import StreamStats
from ometria_sync.pipeline.timeline import MAX_BUCKETS
from ometria_sync.report.html_report import MOST_BARS, render_html
from ometria_sync.report.run_report import RunReport, stream_report


def _long_run() -> RunReport:
    stats = StreamStats("orders")
    for second in range(10 * 3600):  # four requests a second for ten hours, a 429 a minute
        for k in range(4):
            stats.request_sent(second + k / 4)
        if second % 60 == 0:
            stats.count_throttled(second + 0.9)
            stats.count_retry(second + 0.9)
    stats.duration = 36000.0
    return RunReport(run_id="long", job="job.toml", started_at="2026-12-06T00:00:00+00:00",
                     finished_at="2026-12-06T10:00:00+00:00", exit_code=0, dry_run=False,
                     dead_letter_path="", streams=[stream_report(stats, 4.0)])


def test_a_ten_hour_run_makes_a_small_page_with_its_totals() -> None:
    report = _long_run()
    (stream,) = report.streams
    assert stream.timeline is not None and len(stream.timeline.requests) <= MAX_BUCKETS
    page = render_html(report, [])
    assert len(page.encode()) < 150_000
    rate = re.search(r'<svg id="chart-rate"[^>]*>', page)
    assert rate is not None
    assert 'data-requests="144000"' in rate.group(0) and 'data-limit="4"' in rate.group(0)
    assert re.search(r'data-peak="4(\.0+)?"', rate.group(0))  # the rate, not the bucket's count
    assert len(re.findall(r'<rect class="requests"', page)) <= MOST_BARS
    throttling = re.search(r'<svg id="chart-throttling"[^>]*>', page)
    assert throttling is not None and 'data-throttled="600"' in throttling.group(0)
    assert "<script" not in page and "http" not in page.replace("http-equiv", "")
