"""The one redaction of every URL the job names: the state URL, the Redis URL, source DSNs,
object-store endpoints, the Omneo and Ometria base URLs.

A client library takes secrets from more than the userinfo: asyncpg and libpq read
``?password=`` and ``?sslpassword=``, redis-py turns every query parameter into a keyword
(``?password=``, ``?ssl_password=``), a pre-signed URL carries ``X-Amz-Signature``. So a query
parameter whose name looks secret (:data:`SECRET_WORDS`) is a secret too, and so is a bare
Redis user (``redis://TOKEN@host``: a token, not a name).

Guarantee: no secret the client library would use appears in :func:`redact_url`'s output nor in
a text passed through :func:`scrub` / :func:`safe_message` with its URL; everything else of the
URL (scheme, user name, hosts, port, path, other parameters) is kept as written.
"""

from __future__ import annotations

from urllib.parse import unquote, unquote_plus, urlsplit, urlunsplit

#: a query parameter whose lower-cased name contains one of these holds a secret
SECRET_WORDS = ("pass", "pwd", "secret", "token", "auth", "credential", "sig", "key")
#: schemes whose bare user (no password) is the secret itself
_TOKEN_USER_SCHEMES = ("redis", "rediss", "unix")
MASK = "***"
UNPARSABLE = "<a URL that cannot be parsed>"


def _secret_name(name: str) -> bool:
    plain = unquote_plus(name).lower()
    return any(word in plain for word in SECRET_WORDS)


def _userinfo(scheme: str, netloc: str) -> tuple[str, str | None, str]:
    """(user, password or None, host part); a bare token user counts as the password."""
    if "@" not in netloc:
        return "", None, netloc
    userinfo, _, hosts = netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if colon:
        return user, password, hosts
    if scheme.lower() in _TOKEN_USER_SCHEMES:
        return "", user, hosts
    return user, None, hosts


def _query(query: str) -> tuple[str, list[str]]:
    """The query with secret values masked, and those values."""
    kept, secrets = [], []
    for item in query.split("&"):
        name, equals, value = item.partition("=")
        if equals and value and _secret_name(name):
            kept.append(f"{name}={MASK}")
            secrets.append(value)
        else:
            kept.append(item)
    return "&".join(kept), secrets


def redact_url(url: str) -> str:
    """``url`` with its secrets replaced by ``***``: ``postgresql://sync:***@db/x?password=***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return UNPARSABLE
    user, password, hosts = _userinfo(parts.scheme, parts.netloc)
    if password is None:
        netloc = parts.netloc
    else:
        netloc = f"{user}:{MASK}@{hosts}" if user else f"{MASK}@{hosts}"
    query, _ = _query(parts.query)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def url_secrets(url: str) -> list[str]:
    """Every secret of ``url`` as written and as decoded, longest first."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    _, password, _ = _userinfo(parts.scheme, parts.netloc)
    raw = [password] if password else []
    raw += _query(parts.query)[1]
    found = {form for value in raw for form in (value, unquote(value), unquote_plus(value))}
    return sorted((s for s in found if s), key=len, reverse=True)


def scrub(text: str, *urls: str | None) -> str:
    """``text`` (an error, a log line) with each URL redacted and its secrets replaced."""
    for url in urls:
        if not url:
            continue
        text = text.replace(url, redact_url(url))
        for secret in url_secrets(url):
            text = text.replace(secret, MASK)
    return text


def safe_message(exc: BaseException, *urls: str | None) -> str:
    """An exception's message without the secrets of ``urls`` (its type when it says nothing)."""
    return scrub(str(exc) or type(exc).__name__, *urls)
