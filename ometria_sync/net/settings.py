"""The retry settings every HTTP client takes: ``[ometria]`` and each Omneo source."""

from __future__ import annotations

from typing import Annotated

import msgspec


class HttpRetrySettings(msgspec.Struct, frozen=True, kw_only=True):
    """How one HTTP API is waited for and retried (a base of the settings that talk to one)."""

    #: seconds one request may take, connection included
    request_timeout: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    #: retries of one request after 408/5xx/timeouts (Omneo: 429s too) before giving up
    max_retries: Annotated[int, msgspec.Meta(ge=0, le=100)] = 8
    #: longest pause a server's Retry-After may impose
    retry_after_cap: Annotated[float, msgspec.Meta(gt=0)] = 120.0
    backoff_base: Annotated[float, msgspec.Meta(gt=0)] = 0.5
    backoff_cap: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    #: a PEM bundle to verify the server's certificate with, instead of the system's
    ca_bundle: str | None = None
