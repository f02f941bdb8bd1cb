"""Whether a job is healthy, judged from its run history: the rules of ``[alerts]``.

Each rule is off until set. A run "succeeded" when it finished, with exit 0 or 3: exit 3 (some
records refused) is the refusal rules' business, not a failed run. Dry runs are not judged.

* ``max_hours_since_success``: the last success is older than this (or there is none);
* ``max_refused`` / ``max_refused_share``: the last run refused more records than a count, or
  a larger share of those it read;
* ``max_refused_new``: the last run refused more records than a count that it found new (the
  run report's ``refused_new``: not the same content an earlier run refused), so a nightly
  export refusing the same bad rows stays healthy;
* ``min_sent_share_of_median``: the last run sent less than this share of the median of the
  (up to) 7 runs before it, when that median is above 0: a feed that silently shrank;
* ``max_duration_vs_plan``: the last run took longer than this many times its plan (the
  requests it made at the rate limit, as ``plan`` estimates) and by more than a minute; a run
  that made no request has no plan, and the result says so.

The last run failing (exit 1 or 2) is always unhealthy.
"""

from __future__ import annotations

import datetime as dt
import statistics

import msgspec

from ometria_sync.report.history import RunSummary, summarize
from ometria_sync.report.run_report import RunReport

#: the runs before the last whose median ``min_sent_share_of_median`` compares with
MEDIAN_OF = 7
#: a run longer than its plan by less than this is never "too long" (start-up, reading)
PLAN_SLACK_SECONDS = 60.0


class HealthRules(msgspec.Struct, frozen=True, kw_only=True):
    """The ``[alerts]`` thresholds (None: the rule is off)."""

    max_hours_since_success: float | None = None
    max_refused: int | None = None
    max_refused_share: float | None = None
    max_refused_new: int | None = None
    min_sent_share_of_median: float | None = None
    max_duration_vs_plan: float | None = None


class Health(msgspec.Struct):
    healthy: bool
    #: why not (empty when healthy)
    reasons: list[str]
    #: what could not be checked, and why
    notes: list[str]
    #: the run judged (None: none recorded)
    last_run: RunSummary | None


def _plan_seconds(report: RunReport) -> float | None:
    """The run's plan: its requests at the rate limit (None without requests)."""
    requests = sum(s.requests for s in report.streams)
    limit = max((s.rate_limit for s in report.streams), default=0.0)
    return requests / limit if requests and limit else None


def _success_age(runs: list[RunSummary], now: dt.datetime, hours: float) -> str | None:
    done = [r for r in runs if r.exit_code in (0, 3)]
    if not done:
        return f"none of the {len(runs)} runs recorded succeeded (exit 0 or 3)" if runs else \
            "no run is recorded"
    last = dt.datetime.fromisoformat(done[-1].finished_at)
    age = (now - last).total_seconds() / 3600
    if age > hours:
        return (f"the last successful run ended {age:.1f} hours ago ({done[-1].finished_at}); "
                f"max_hours_since_success is {hours:g}")
    return None


def _refusals(run: RunSummary, report: RunReport, rules: HealthRules) -> list[str]:
    reasons = []
    new = sum(s.refused_new for s in report.streams)
    if rules.max_refused_new is not None and new > rules.max_refused_new:
        reasons.append(f"the last run refused {new} records it found new (not refused with "
                       f"the same content before); max_refused_new is {rules.max_refused_new}")
    if rules.max_refused is not None and run.refused > rules.max_refused:
        reasons.append(f"the last run refused {run.refused} records; max_refused is "
                       f"{rules.max_refused}")
    share = run.refused / run.read if run.read else 0.0
    if rules.max_refused_share is not None and share > rules.max_refused_share:
        reasons.append(f"the last run refused {share:.1%} of the {run.read} records it read; "
                       f"max_refused_share is {rules.max_refused_share:.1%}")
    return reasons


def _shrank(runs: list[RunSummary], share: float) -> tuple[str | None, str | None]:
    """(reason, note) for ``min_sent_share_of_median``."""
    *before, last = runs
    before = before[-MEDIAN_OF:]
    if not before:
        return None, "min_sent_share_of_median: no earlier run to compare with"
    median = statistics.median(r.sent for r in before)
    if median <= 0:
        return None, None
    if last.sent < share * median:
        return (f"the last run sent {last.sent} records, under {share:.0%} of the median "
                f"{median:g} of the {len(before)} runs before it"), None
    return None, None


def judge(reports: list[RunReport], rules: HealthRules, now: dt.datetime) -> Health:
    """The job's health from its run reports (any order): the last run (not a dry run) and
    the ones before it against ``rules``."""
    ordered = sorted((r for r in reports if not r.dry_run), key=lambda r: (r.started_at, r.run_id))
    runs = [summarize(r) for r in ordered]
    reasons: list[str] = []
    notes: list[str] = []
    if rules.max_hours_since_success is not None:
        stale = _success_age(runs, now, rules.max_hours_since_success)
        reasons += [stale] if stale else []
    if not runs:
        return Health(not reasons, reasons, ["no run is recorded"], None)
    last = runs[-1]
    if last.exit_code in (1, 2):
        reasons.append(f"the last run failed (exit {last.exit_code}): "
                       f"{ordered[-1].error or 'see its report'}")
    reasons += _refusals(last, ordered[-1], rules)
    if rules.min_sent_share_of_median is not None:
        shrank, note = _shrank(runs, rules.min_sent_share_of_median)
        reasons += [shrank] if shrank else []
        notes += [note] if note else []
    if rules.max_duration_vs_plan is not None:
        plan = _plan_seconds(ordered[-1])
        if plan is None:
            notes.append("max_duration_vs_plan: the last run made no request, so it has no "
                         "plan estimate; not checked")
        elif (last.duration_seconds > rules.max_duration_vs_plan * plan
              and last.duration_seconds - plan > PLAN_SLACK_SECONDS):
            reasons.append(f"the last run took {last.duration_seconds:.0f} s, over "
                           f"{rules.max_duration_vs_plan:g} times its plan of {plan:.0f} s "
                           "(its requests at the rate limit)")
    return Health(not reasons, reasons, notes, last)
