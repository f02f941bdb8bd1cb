"""Omneo's HTTP API (aiohttp): GETs through Omneo's own pacer, bounded concurrency and retries.

Omneo documents no rate limit, so the client paces itself (requests evenly spaced at
``rate_limit_per_second``, the same pacer as Ometria's but a separate instance: reading Omneo
never spends Ometria's budget; one per tenant, see :func:`.reader.tenant_pacer`) and keeps at most
``concurrency`` requests in flight.

Answers and what they mean for the stream:

* 2xx: JSON, decoded (a body that is not JSON fails the stream);
* 429: every Omneo request pauses (``Retry-After`` is a floor, capped; else exponential
  backoff with jitter), repeated 429s halve the rate, then the same request is retried;
* 408, 5xx, a timeout or a dropped connection: retried with backoff and jitter;
* after ``max_retries`` retries of one request: :class:`~ometria_sync.errors.SourceError`;
* 401/403: :class:`OmneoAuthError` at once (the token is wrong or lacks a scope);
* 3xx: SourceError naming the Location; redirects are never followed (the token would go along);
* 404: None from :meth:`OmneoClient.find` (a profile without aggregations), an error from
  :meth:`OmneoClient.get`; any other status: SourceError with Omneo's message.

The token travels in the ``Authorization`` header only; no exception or log line holds it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import msgspec
import structlog

from ometria_sync._version import __version__
from ometria_sync.clock import Sleep
from ometria_sync.errors import RetryableError, SourceError, ThrottledError, TransientError
from ometria_sync.net import Backoff, parse_retry_after, ssl_context
from ometria_sync.pacing import Pacer

log = structlog.get_logger("ometria_sync.omneo")

_TRANSIENT = frozenset({408, 425, 500, 502, 503, 504})


class OmneoAuthError(SourceError):
    """Omneo refused the token (401) or its scopes (403): the stream cannot go on."""


class OmneoClient:
    """One Omneo tenant. Create it inside a running event loop; ``aclose()`` it."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        rate: float = 5.0,
        concurrency: int = 8,
        timeout: float = 30.0,
        max_retries: int = 8,
        retry_after_cap: float = 120.0,
        backoff: Backoff | None = None,
        ca_bundle: str | None = None,
        pacer: Pacer | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._token = token  # only to scrub it from a Location header quoted in an error
        self._max_retries = max_retries
        self._retry_after_cap = retry_after_cap
        self._backoff = backoff or Backoff()
        self._pacer = pacer or Pacer(rate, sleep=sleep)
        self._sleep = sleep
        self._slots = asyncio.Semaphore(concurrency)
        self.requests = 0
        tls = ssl_context(ca_bundle) if self._base.startswith("https") else False
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency, ssl=tls),
            timeout=aiohttp.ClientTimeout(total=timeout),
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": f"ometria-sync/{__version__}",
            },
        )

    async def aclose(self) -> None:
        await self._session.close()

    async def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET ``path`` (below the base URL) and decode its JSON; 404 is an error."""
        return await self._get(path, params, missing_ok=False)

    async def find(self, path: str, params: dict[str, str] | None = None) -> Any | None:
        """Like :meth:`get`, but 404 ("no such thing") is None."""
        return await self._get(path, params, missing_ok=True)

    async def _get(self, path: str, params: dict[str, str] | None, *, missing_ok: bool) -> Any:
        attempt = 0
        while True:
            try:
                return await self._attempt(path, params, missing_ok)
            except RetryableError as exc:
                if attempt >= self._max_retries:
                    raise SourceError(f"Omneo GET {path}: still failing after "
                                      f"{attempt + 1} attempts: {exc}") from exc
                await self._wait(path, exc, attempt)
                attempt += 1

    async def _wait(self, path: str, exc: RetryableError, attempt: int) -> None:
        """A 429 pauses every Omneo request (the pacer waits it out); other failures wait
        here, for this request only."""
        if isinstance(exc, ThrottledError):
            delay = self._pacer.throttled(self._backoff, exc.retry_after)
        else:
            delay = self._backoff.delay(attempt, exc.retry_after)
        log.warning("omneo_retry", path=path, status=exc.status, attempt=attempt + 1,
                    retry_after=exc.retry_after, delay=round(delay, 3), error=str(exc))
        if not isinstance(exc, ThrottledError):
            await self._sleep(delay)

    async def _attempt(self, path: str, params: dict[str, str] | None, missing_ok: bool) -> Any:
        async with self._slots:
            await self._pacer.acquire()
            self.requests += 1
            status, headers, body = await self._send(path, params)
        if 200 <= status < 300:
            self._pacer.on_success()
            return _decode(path, body)
        if status == 404 and missing_ok:
            self._pacer.on_success()
            return None
        raise self._error_for(path, status, headers, body)

    async def _send(self, path: str, params: dict[str, str] | None) -> tuple[int, Any, bytes]:
        try:
            async with self._session.get(
                self._base + path, params=params, allow_redirects=False
            ) as resp:
                return resp.status, resp.headers, await resp.read()
        except TimeoutError as exc:
            raise TransientError("no answer within the timeout") from exc
        except aiohttp.ClientConnectorCertificateError as exc:
            raise SourceError(f"Omneo GET {path}: TLS certificate not trusted "
                              f"({exc.certificate_error}); set the source's ca_bundle") from None
        except (aiohttp.ClientError, asyncio.IncompleteReadError, ConnectionError) as exc:
            raise TransientError(f"connection failed: {type(exc).__name__}") from exc

    def _error_for(self, path: str, status: int, headers: Any, body: bytes) -> Exception:
        where = f"Omneo GET {path}"
        retry_after = parse_retry_after(headers.get("Retry-After"), self._retry_after_cap)
        if status in (401, 403):
            return OmneoAuthError(
                f"{where}: Omneo refused the token (HTTP {status}); check that it is current "
                "and has read access to profiles and transactions")
        if status == 429:
            return ThrottledError(f"{where}: HTTP 429", retry_after=retry_after)
        if 300 <= status < 400:
            location = (headers.get("Location") or "(none)").replace(self._token, "***")
            return SourceError(f"{where}: HTTP {status} redirect to {location[:200]}; redirects "
                               "are never followed (the token would go along): set the "
                               "source's base_url to the address that answers")
        if status in _TRANSIENT or status >= 500:
            return TransientError(f"HTTP {status}: {_snippet(body)}", status=status,
                                  retry_after=retry_after)
        hint = ""
        if status in (400, 422):
            hint = (" (Omneo refused the query: check the source's sort, updated_filter and "
                    "page parameter settings)")
        return SourceError(f"{where}: HTTP {status}{hint}: {_snippet(body)}")


def _decode(path: str, body: bytes) -> Any:
    try:
        return msgspec.json.decode(body) if body.strip() else None
    except (msgspec.DecodeError, UnicodeDecodeError):  # msgspec <0.23 raises the latter
        raise SourceError(f"Omneo GET {path}: the answer is not JSON: {_snippet(body)}") from None


def _snippet(body: bytes, limit: int = 200) -> str:
    text = body.decode("utf-8", "replace").strip()
    return text if len(text) <= limit else text[:limit] + "..."
