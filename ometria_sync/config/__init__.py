"""The job file: frozen settings, validated once at start-up, with errors that name the key.

Precedence, lowest first: built-in defaults, the TOML job file, environment variables named
``OMETRIA_SYNC__<SECTION>__<KEY>`` (e.g. ``OMETRIA_SYNC__OMETRIA__RATE_LIMIT_PER_SECOND=8``,
``OMETRIA_SYNC__STATE__CHECKPOINT_URL=sqlite:////data/cp.db``). Override values are read as TOML
values when they parse as one (numbers, booleans), else as strings. Only the ``ometria``,
``state``, ``run`` and ``report`` sections can be overridden.

Relative paths resolve against the job file's folder. The API key never lives in the file: it is
read from the environment variable ``ometria.api_key_env`` or the file ``ometria.api_key_file``.
"""

from ometria_sync.config.loading import ENV_PREFIX, Job, load_job, read_api_key, read_rate_limit_url
from ometria_sync.config.sections import (
    AlertSettings,
    JobSettings,
    OmetriaSettings,
    ReportSettings,
    RunSettings,
    StateSettings,
    StreamSettings,
)
from ometria_sync.schemas import RECORD_TYPES, RecordType

__all__ = [
    "ENV_PREFIX",
    "RECORD_TYPES",
    "AlertSettings",
    "Job",
    "JobSettings",
    "OmetriaSettings",
    "RecordType",
    "ReportSettings",
    "RunSettings",
    "StateSettings",
    "StreamSettings",
    "load_job",
    "read_api_key",
    "read_rate_limit_url",
]
