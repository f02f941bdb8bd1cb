"""structlog set-up: readable lines on a terminal, JSON lines otherwise (cron, containers).

Events have stable keys (``stream``, ``batch``, ``position``, ``status``, ``retry_after``) so that
log processors and tests can rely on them. Email addresses in values are masked unless the user
asks for them in clear: logs end up in places personal data should not.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Literal

import structlog

LogFormat = Literal["auto", "console", "json"]
_EMAIL = re.compile(r"([A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]*@([A-Za-z0-9.\-]+\.[A-Za-z]{2,})")


def mask_emails(text: str) -> str:
    """``ann.lee@example.com`` -> ``a***@example.com``."""
    return _EMAIL.sub(r"\1***@\2", text)


def _mask_processor(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in event_dict.items():
        if isinstance(value, str) and "@" in value:
            event_dict[key] = mask_emails(value)
    return event_dict


def configure_logging(
    fmt: LogFormat = "auto", level: str = "info", *, show_emails: bool = False
) -> None:
    """Configure structlog for the process. Logs go to stderr; stdout is for results."""
    stream = sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    renderer: Any
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    else:
        renderer = structlog.processors.JSONRenderer()
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if not show_emails:
        processors.append(_mask_processor)
    processors += [structlog.processors.format_exc_info, renderer]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
