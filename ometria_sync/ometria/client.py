"""The HTTP client for Ometria's Data API (aiohttp): one request, one typed outcome.

It never retries (the dispatcher decides that) and never puts request headers, hence the API key,
into an exception or a log line. It never follows a redirect: a 3xx is fatal (following one
turned a POST into a GET to another host, with the key, and counted its HTML page as accepted).
A push is acknowledged only by a 2xx whose JSON body says ``status: OK`` and whose counts add up
to the records sent; any other 2xx is :class:`~ometria_sync.errors.UnconfirmedAnswerError`.
Every other answer maps to an error class named for what the caller does next (see
:mod:`ometria_sync.errors`).
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

import aiohttp
import msgspec

from ometria_sync._version import __version__
from ometria_sync.errors import (
    AuthenticationError,
    BatchRejectedError,
    FatalApiError,
    ThrottledError,
    TransientError,
    UnconfirmedAnswerError,
)
from ometria_sync.net import parse_retry_after, redact_url, ssl_context
from ometria_sync.ometria.push import PushResult, SentHook

_BAD_BATCH = frozenset({400, 413, 422})
_TRANSIENT = frozenset({408, 425, 500, 502, 503, 504})


class _PushAnswer(msgspec.Struct):
    status: str | None = None
    request_id: str | None = None
    accepted: int | None = None
    rejected: int | None = None
    skipped: int | None = None  # declared by a third-party model; counted when present


def _int_header(headers: Any, name: str) -> int | None:
    raw = headers.get(name)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def _snippet(body: bytes, limit: int = 300) -> str:
    text = body.decode("utf-8", "replace").strip()
    return text if len(text) <= limit else text[:limit] + "..."


async def _report_sent(
    session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestChunkSentParams
) -> None:
    """aiohttp trace hook, run as the body goes to the socket (aiohttp holds the headers back
    to send them with it); tell the caller's ``on_sent``."""
    hook = (context.trace_request_ctx or {}).get("on_sent")
    if hook is not None:
        hook(asyncio.get_running_loop().time())


def _network_jitter(resp: aiohttp.ClientResponse) -> float | None:
    """Twice the kernel's smoothed round-trip variation of the response's TCP connection
    (``tcpi_rttvar``, Linux), in seconds: how much the network's delay varies, without the
    server's own answer time. None where the platform or the transport cannot tell."""
    # the response has already released its connection to the pool when a short body was read
    # with the headers, so ask its protocol (private in aiohttp, hence the getattr)
    transport = getattr(getattr(resp, "_protocol", None), "transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    tcp_info = getattr(socket, "TCP_INFO", None)
    if sock is None or tcp_info is None:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, tcp_info, 104)
        _, rttvar = struct.unpack_from("II", info, 68)  # tcpi_rtt, tcpi_rttvar (microseconds)
    except (OSError, struct.error):
        return None
    return 2 * int(rttvar) / 1e6


class OmetriaClient:
    """Talks to one Ometria account. Create it inside a running event loop; ``aclose()`` it."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        retry_after_cap: float = 120.0,
        ca_bundle: str | None = None,
        connections: int = 16,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._key = api_key  # only to scrub it from a Location header quoted in an error
        self._retry_after_cap = retry_after_cap
        tls = ssl_context(ca_bundle) if self._base.startswith("https") else False
        connector = aiohttp.TCPConnector(limit=connections, ssl=tls)
        sent = aiohttp.TraceConfig()
        sent.on_request_chunk_sent.append(_report_sent)
        self._session = aiohttp.ClientSession(
            connector=connector,
            trace_configs=[sent],
            timeout=aiohttp.ClientTimeout(total=timeout),
            headers={
                "X-Ometria-Auth": api_key,
                "Accept": "application/json",
                "User-Agent": f"ometria-sync/{__version__}",
            },
        )

    async def aclose(self) -> None:
        await self._session.close()

    async def push(
        self, body: bytes, count: int, on_sent: SentHook | None = None
    ) -> PushResult:
        """POST a JSON array of ``count`` records to ``/push``; ``on_sent`` is told the loop
        time at which the request was written (after any connection set-up)."""
        status, headers, payload, jitter = await self._request(
            "POST", "/push", data=body, headers={"Content-Type": "application/json"},
            trace_request_ctx={"on_sent": on_sent} if on_sent is not None else None,
        )
        answer = _acknowledgement(status, payload, count)
        return PushResult(
            status=status,
            accepted=answer.accepted or 0,
            rejected=answer.rejected or 0,
            skipped=answer.skipped or 0,
            request_id=answer.request_id,
            queue_remaining=_int_header(headers, "X-QueueSize-Remaining"),
            queue_limit=_int_header(headers, "X-QueueSize-Limit"),
            network_jitter=jitter,
        )

    async def get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET a read endpoint (e.g. ``/push/_errors``) and decode its JSON."""
        _, _, payload, _ = await self._request("GET", path, params=params)
        try:
            return msgspec.json.decode(payload)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # which one: msgspec's version
            raise FatalApiError(f"GET {path}: answer is not JSON: {_snippet(payload)}") from exc

    async def _request(
        self, method: str, path: str, **kwargs: Any
    ) -> tuple[int, Any, bytes, float | None]:
        """``(status, headers, body, network jitter)`` of one request, never redirected."""
        url = self._base + path
        try:
            async with self._session.request(
                method, url, allow_redirects=False, **kwargs
            ) as resp:
                payload = await resp.read()
                jitter = _network_jitter(resp)
                status, headers = resp.status, resp.headers
        except TimeoutError as exc:
            raise TransientError(f"{method} {path}: no answer within the timeout") from exc
        except aiohttp.ClientConnectorCertificateError as exc:
            raise FatalApiError(
                f"{method} {redact_url(url)}: TLS certificate not trusted "
                f"({exc.certificate_error}); "
                "set ometria.ca_bundle if you use a private CA"
            ) from None
        except (aiohttp.ClientError, asyncio.IncompleteReadError, ConnectionError) as exc:
            raise TransientError(
                f"{method} {path}: connection failed: {type(exc).__name__}"
            ) from exc
        if 200 <= status < 300:
            return status, headers, payload, jitter
        raise self._error_for(method, path, status, headers, payload)

    def _error_for(
        self, method: str, path: str, status: int, headers: Any, payload: bytes
    ) -> Exception:
        where = f"{method} {path}"
        if 300 <= status < 400:
            location = headers.get("Location") or "(no Location header)"
            if self._key:
                location = location.replace(self._key, "***")
            return FatalApiError(
                f"{where}: HTTP {status} redirect to {location[:200]}; redirects are never "
                "followed (the API key would go along, and a POST may turn into a GET): set "
                "ometria.base_url to the address that answers, or bypass the proxy",
                status=status,
            )
        retry_after = parse_retry_after(headers.get("Retry-After"), self._retry_after_cap)
        if status in (401, 403):
            return AuthenticationError(
                f"{where}: Ometria refused the API key (HTTP {status}); check that the key is "
                "set, current, and belongs to this account (staging and live keys differ)",
                status=status,
            )
        if status == 429:
            return ThrottledError(
                f"{where}: HTTP 429 (rate limit or import queue full)",
                retry_after=retry_after,
                queue_remaining=_int_header(headers, "X-QueueSize-Remaining"),
            )
        if status in _TRANSIENT or status >= 500:
            return TransientError(
                f"{where}: HTTP {status}: {_snippet(payload, 120)}",
                status=status,
                retry_after=retry_after,
            )
        if status in _BAD_BATCH:
            return BatchRejectedError(
                f"{where}: HTTP {status}", status=status, detail=_snippet(payload)
            )
        return FatalApiError(
            f"{where}: unexpected HTTP {status} (is ometria.base_url right?): "
            f"{_snippet(payload, 120)}",
            status=status,
        )


def _acknowledgement(status: int, payload: bytes, count: int) -> _PushAnswer:
    """Ometria's answer to a push of ``count`` records, if it is one: JSON, ``status`` OK, and
    ``accepted + rejected (+ skipped)`` equal to ``count``. Anything else raises
    :class:`UnconfirmedAnswerError`: the records may not have reached Ometria."""
    answer: _PushAnswer | None
    problem: str | None
    try:
        answer = msgspec.json.decode(payload, type=_PushAnswer)
    except (msgspec.DecodeError, UnicodeDecodeError):  # msgspec <0.23 raises the latter
        answer, problem = None, "not Ometria's JSON answer"
    else:
        problem = _ack_problem(answer, count)
    if answer is None or problem:
        raise UnconfirmedAnswerError(
            f"POST /push: HTTP {status} but {problem}, so the {count} records are not "
            f"counted as delivered: {_snippet(payload, 160)!r}. Is a proxy answering, or "
            "ometria.base_url wrong?",
            status=status,
        )
    return answer


def _ack_problem(answer: _PushAnswer, count: int) -> str | None:
    if (answer.status or "").upper() != "OK":
        return f"status {answer.status!r}, not OK"
    if answer.accepted is None or answer.rejected is None:
        return "no accepted/rejected counts"
    counts = (answer.accepted, answer.rejected, answer.skipped or 0)
    if min(counts) < 0:
        return "negative counts"
    if sum(counts) != count:
        return f"its counts add up to {sum(counts)}, not the {count} sent"
    return None
