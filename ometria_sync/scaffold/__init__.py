"""Writing a first job file from a CSV export: the header's columns matched to the fields they
likely fill (``headers``, the one matching table), the conversions the
sampled cells show they need (``conventions``), the export's head read as it is (``export``),
and the job's text (``job_text``). ``ometria-sync init`` puts them together."""

from ometria_sync.scaffold.conventions import CHECK, Conversion, Sample
from ometria_sync.scaffold.export import ExportError, ExportHead, guess_delimiter, read_head
from ometria_sync.scaffold.headers import (
    KNOWN,
    ColumnMatch,
    Known,
    computed_columns,
    match_header,
    normal,
)
from ometria_sync.scaffold.job_text import STREAM_NAMES, JobPlan, job_text

__all__ = [
    "CHECK",
    "KNOWN",
    "STREAM_NAMES",
    "ColumnMatch",
    "Conversion",
    "ExportError",
    "ExportHead",
    "JobPlan",
    "Known",
    "Sample",
    "computed_columns",
    "guess_delimiter",
    "job_text",
    "match_header",
    "normal",
    "read_head",
]
