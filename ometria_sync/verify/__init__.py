"""``ometria-sync verify``: know that what was sent arrived (see :mod:`.run`)."""

from ometria_sync.verify.check import Plan, error_fingerprint
from ometria_sync.verify.notes import VerifyStep, read_steps
from ometria_sync.verify.notes import log_path as verify_log_path
from ometria_sync.verify.report import LISTED, VerifyOptions, outcome_rows, report_json
from ometria_sync.verify.run import verify_job
from ometria_sync.verify.select import sending_run_reports

__all__ = [
    "LISTED",
    "Plan",
    "VerifyOptions",
    "VerifyStep",
    "error_fingerprint",
    "outcome_rows",
    "read_steps",
    "report_json",
    "sending_run_reports",
    "verify_job",
    "verify_log_path",
]
