"""``ometria-sync verify``: know that what was sent arrived (see :mod:`.run`)."""

from ometria_sync.verify.check import Plan, error_fingerprint
from ometria_sync.verify.report import LISTED, VerifyOptions, outcome_rows, report_json
from ometria_sync.verify.run import verify_job
from ometria_sync.verify.select import sending_run_reports

__all__ = [
    "LISTED",
    "Plan",
    "VerifyOptions",
    "error_fingerprint",
    "outcome_rows",
    "report_json",
    "sending_run_reports",
    "verify_job",
]
