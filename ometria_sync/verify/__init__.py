"""``ometria-sync verify``: know that what was sent arrived (see :mod:`.run`)."""

from ometria_sync.verify.check import Plan, error_fingerprint
from ometria_sync.verify.report import LISTED, VerifyOptions, outcome_rows, report_json
from ometria_sync.verify.run import verify_job

__all__ = [
    "LISTED",
    "Plan",
    "VerifyOptions",
    "error_fingerprint",
    "outcome_rows",
    "report_json",
    "verify_job",
]
