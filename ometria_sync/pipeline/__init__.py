"""The engine: a run of a job's streams, each read -> batched -> delivered -> settled.

``run_job`` (``job_run.py``) is the entry; ``stream_run.py`` runs one stream; ``batcher.py``
cuts batches; ``prepare.py`` builds the record as sent (``prepare_record``, which ``verify``
shares);
``transform.py`` resolves and applies a stream's own ``transform`` function;
``dispatch.py`` delivers a batch and returns its outcome; ``settle.py`` writes the outcome down
in the one order it states.
"""

from ometria_sync.pipeline.change_filter import hash64, identity
from ometria_sync.pipeline.job_io import ProgressMode, RunView, SignalWatch, new_run_id
from ometria_sync.pipeline.job_run import (
    JobResult,
    RunOptions,
    account_pacer,
    run_job,
    shared_budget,
)
from ometria_sync.pipeline.ledger import leaves_when_verified, record_key, verify_finding
from ometria_sync.pipeline.missing import deactivated
from ometria_sync.pipeline.prepare import Validator, prepare_record, schema_validator
from ometria_sync.pipeline.stats import StreamStats, WarningSample
from ometria_sync.pipeline.transform import Transform, load_transform, load_transforms

__all__ = [
    "JobResult",
    "ProgressMode",
    "RunOptions",
    "RunView",
    "SignalWatch",
    "StreamStats",
    "Transform",
    "Validator",
    "WarningSample",
    "account_pacer",
    "deactivated",
    "hash64",
    "identity",
    "leaves_when_verified",
    "load_transform",
    "load_transforms",
    "new_run_id",
    "prepare_record",
    "record_key",
    "run_job",
    "schema_validator",
    "shared_budget",
    "verify_finding",
]
