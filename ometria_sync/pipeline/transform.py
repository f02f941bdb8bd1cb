"""A stream's ``transform = "module:function"``: the user's own Python, from a record to a
record or None, for what the job file's mapping cannot say.

Resolved once, at start-up, before anything is sent (:func:`load_transform`): the module is
looked for in the job file's folder first, then on ``PYTHONPATH``; a module or function that
cannot be found, or a module that fails to import, is a ConfigError naming
``streams[i].transform``. Imported once per process: every part, and ``verify``, call the same
function.

It runs first in :func:`~ometria_sync.pipeline.batcher.prepare_record`, on the record as the
source produced it (a dict) and before the envelope check and validation, so the transformed
record is what is checked, sent, hashed by change detection and compared by ``verify``.
Guarantees: it never crashes a run. An exception refuses that record (dead-lettered with the
exception's last line); a value that is not a dict or None refuses it too; None skips it
(counted as ``filtered``, neither sent nor dead-lettered, and its position still passes the
checkpoint).
"""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ometria_sync.config import Job, StreamSettings
from ometria_sync.errors import ConfigError

#: a function of the user's: the record (a dict) in, a record or None (skip) out
TransformFunction = Callable[[dict[str, Any]], Any]

#: resolved transforms, by (job folder, spec): each module is imported once per process
_LOADED: dict[tuple[str, str], Transform] = {}


class Transform:
    """One resolved ``module:function``, applied to one record at a time."""

    __slots__ = ("function", "spec")

    def __init__(self, spec: str, function: TransformFunction) -> None:
        self.spec = spec
        self.function = function

    def fingerprint(self) -> bytes:
        """The spec and the source of the function's module (change detection's fast path
        skips lines unread only under the same code: ``line_groups.py``)."""
        module = sys.modules.get(getattr(self.function, "__module__", "") or "")
        path = getattr(module, "__file__", None)
        try:
            code = Path(path).read_bytes() if path else b""
        except OSError:
            code = repr(self.function).encode()  # unreadable: no skipping across runs
        return self.spec.encode() + b"\x00" + code

    def apply(self, record: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        """``(record, None)``, ``(None, None)`` to skip it, or ``(None, reason)`` when the
        function raised or returned something else than a record."""
        try:
            result = self.function(record)
        except Exception as exc:
            last = traceback.format_exception_only(exc)[-1].strip()
            return None, f"transform {self.spec} raised {last}"
        if result is None or result.__class__ is dict:
            return result, None
        if isinstance(result, dict):
            return dict(result), None
        return None, (f"transform {self.spec} returned a {type(result).__name__}, expected a "
                      "record (a dict) or None")


def load_transform(job: Job, stream: StreamSettings) -> Transform | None:
    """The stream's transform, imported once (None when it has none). ConfigError naming
    ``streams[i].transform`` when it cannot be found."""
    spec = stream.transform
    if spec is None:
        return None
    folder = str(job.path.parent)
    loaded = _LOADED.get((folder, spec))
    if loaded is None:
        key = f"streams[{job.index_of(stream.name)}].transform"
        loaded = _LOADED[(folder, spec)] = Transform(spec, _resolve(key, spec, folder))
    return loaded


def load_transforms(job: Job, streams: list[StreamSettings]) -> dict[str, Transform]:
    """The transforms of ``streams``, by stream name (ConfigError for the first that cannot
    be found)."""
    found = {s.name: load_transform(job, s) for s in streams}
    return {name: t for name, t in found.items() if t is not None}


def _resolve(key: str, spec: str, folder: str) -> TransformFunction:
    module_name, _, name = spec.partition(":")
    if not module_name or not name or not all(
            part.isidentifier() for part in (*module_name.split("."), name)):
        raise ConfigError(key, f'expected "module:function" (e.g. "shop_rules:fix_contact"), '
                               f"got {spec!r}")
    module = _import(key, module_name, folder)
    function = getattr(module, name, None)
    if function is None:
        raise ConfigError(key, f"module {module_name!r} ({getattr(module, '__file__', '?')}) "
                               f"has no function {name!r}")
    if not callable(function):
        raise ConfigError(key, f"{spec} is a {type(function).__name__}, not a function")
    return function  # type: ignore[no-any-return]


def _import(key: str, module_name: str, folder: str) -> Any:
    """Import ``module_name`` with the job file's folder searched first (only while the module
    is imported, so the folder's files never shadow other modules later; it stays at the end
    of the path for the module's own later imports)."""
    sys.path.insert(0, folder)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name or module_name.startswith(f"{exc.name}."):
            raise ConfigError(key, f"no module {module_name!r} in the job file's folder "
                                   f"({folder}) or on PYTHONPATH") from None
        raise ConfigError(key, f"importing {module_name!r} failed: {exc}") from None
    except Exception as exc:
        last = traceback.format_exception_only(exc)[-1].strip()
        raise ConfigError(key, f"importing {module_name!r} failed: {last}") from None
    finally:
        sys.path.remove(folder)
        if folder not in sys.path:
            sys.path.append(folder)
