"""The Ometria side: the push seam, the HTTP client and the dry-run writer."""

from ometria_sync.ometria.client import OmetriaClient
from ometria_sync.ometria.dry_run import DryRunPusher, NullPusher
from ometria_sync.ometria.push import Pusher, PushResult

__all__ = [
    "DryRunPusher",
    "NullPusher",
    "OmetriaClient",
    "PushResult",
    "Pusher",
]
