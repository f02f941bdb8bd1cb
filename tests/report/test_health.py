"""The health rules, each planted alone: unhealthy with a reason naming it; healthy without."""

from __future__ import annotations

import datetime as dt

import pytest

from ometria_sync.report.health import HealthRules, judge
from ometria_sync.report.run_report import RunReport, StreamReport

NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)


def run(day: int, *, sent: int = 1000, refused: int = 0, exit_code: int = 0,
        seconds: float = 300, requests: int = 1000, dry_run: bool = False,
        refused_new: int | None = None) -> RunReport:
    start = dt.datetime(2026, 12, day, 2, 0, tzinfo=dt.UTC)
    stream = StreamReport(
        stream="contacts", outcome="ok", read=sent + refused, valid=sent, unchanged=0,
        sent=sent, accepted=sent, rejected=0, dead_lettered=refused, warnings=0,
        requests=requests, requests_by_status={"202": requests}, retries=0, throttled=0,
        duration_seconds=seconds, records_per_second=0, requests_per_second=3.9, rate_limit=4,
        rate_achieved_fraction=0.97, checkpoint_position=None, refused_reasons={}, error=None,
        refused_new=refused if refused_new is None else refused_new,
        refused_known=refused - (refused if refused_new is None else refused_new))
    return RunReport(run_id=f"run-{day}", job="job.toml", started_at=start.isoformat(),
                     finished_at=(start + dt.timedelta(seconds=seconds)).isoformat(),
                     exit_code=exit_code, dry_run=dry_run, dead_letter_path="", streams=[stream])


WEEK = [run(day) for day in range(1, 6)]
ALL_RULES = HealthRules(max_hours_since_success=36, max_refused=10, max_refused_share=0.01,
                        max_refused_new=0, min_sent_share_of_median=0.5,
                        max_duration_vs_plan=2)


def test_a_good_week_is_healthy_under_every_rule() -> None:
    health = judge(WEEK, ALL_RULES, NOW)
    assert health.healthy and health.reasons == [] and health.notes == []
    assert health.last_run is not None and health.last_run.run_id == "run-5"


@pytest.mark.parametrize(("rules", "last", "words"), [
    (HealthRules(max_hours_since_success=12), None, "hours ago"),
    (HealthRules(max_refused=10), run(5, refused=11), "refused 11 records"),
    (HealthRules(max_refused_share=0.01), run(5, sent=100, refused=2), "max_refused_share"),
    (HealthRules(max_refused_new=2), run(5, refused=50, refused_new=3), "refused 3 records it "
                                                                        "found new"),
    (HealthRules(min_sent_share_of_median=0.5), run(5, sent=499), "under 50% of the median"),
    (HealthRules(max_duration_vs_plan=2), run(5, seconds=600, requests=1000),
     "over 2 times its plan of 250 s"),
    (HealthRules(), run(5, exit_code=1), "the last run failed (exit 1)"),
])
def test_each_rule_planted_alone_makes_it_unhealthy(
    rules: HealthRules, last: RunReport | None, words: str
) -> None:
    history = [*WEEK[:-1], last] if last is not None else WEEK
    health = judge(history, rules, NOW)
    assert not health.healthy
    (reason,) = health.reasons
    assert words in reason
    # the same rule over the good week is quiet
    soon_after = dt.datetime(2026, 12, 5, 6, 0, tzinfo=dt.UTC)  # 4 h after the last run
    assert judge(WEEK, rules, soon_after).healthy


def test_just_under_each_threshold_is_healthy() -> None:
    history = [*WEEK[:-1], run(5, sent=1000, refused=10, seconds=500)]
    rules = HealthRules(max_refused=10, max_refused_share=0.01, min_sent_share_of_median=1,
                        max_duration_vs_plan=2)
    assert judge(history, rules, NOW).reasons == []


def test_refusals_an_earlier_run_made_alike_do_not_count_as_new() -> None:
    history = [*WEEK[:-1], run(5, refused=634, refused_new=0)]  # the nightly known-bad rows
    assert judge(history, HealthRules(max_refused_new=0), NOW).healthy
    assert not judge(history, HealthRules(max_refused=100), NOW).healthy


def test_a_run_within_a_minute_of_its_plan_is_never_too_long() -> None:
    history = [*WEEK[:-1], run(5, seconds=50, requests=10)]  # plan 2.5 s, 20 times over
    assert judge(history, HealthRules(max_duration_vs_plan=2), NOW).healthy


def test_what_cannot_be_checked_is_said() -> None:
    health = judge([run(5, requests=0, sent=0)], ALL_RULES, NOW)
    assert any("no plan estimate" in note for note in health.notes)
    assert any("no earlier run" in note for note in health.notes)


def test_no_run_at_all_is_unhealthy_when_success_is_expected() -> None:
    health = judge([], HealthRules(max_hours_since_success=24), NOW)
    assert not health.healthy and health.reasons == ["no run is recorded"]
    assert judge([], HealthRules(), NOW).healthy


def test_dry_runs_and_partial_runs() -> None:
    """A dry run is not judged; exit 3 counts as a success for the age rule."""
    history = [*WEEK, run(6, exit_code=3, refused=3), run(6, sent=0, dry_run=True)]
    health = judge(history, HealthRules(max_hours_since_success=12, max_refused=5), NOW)
    assert health.healthy
    assert health.last_run is not None and health.last_run.run_id == "run-6"
