"""Every URL the job names, parsed, checked and redacted here, once: the state URL (a SQLite
file or a PostgreSQL DSN, and the schema it lives in), the Redis URL of the shared budget, the
Ometria base URL's one spelling, the MySQL source's DSN (:func:`parse_mysql_dsn`), and the
redaction of every URL (the SQL sources' DSNs in their connection errors, :func:`dsn_message`;
object-store endpoints, the Omneo and Ometria base URLs too).

An HTTP API's base URL (Ometria's, Omneo's) is http(s), and plain http:// only to a loopback
host (:func:`base_url_problem`).

The state URL is ``sqlite:///PATH`` or ``postgresql://`` / ``postgres://``
(:func:`parse_state_url`); the configuration's check, the state's opener and the SQLite run
lock all read it through :func:`parse_state_url`, so they cannot disagree on what a URL names.

:func:`normalise_url` gives one spelling of an Ometria base URL, so that everything keyed by
the account agrees: the state's account identity (:mod:`ometria_sync.state.store`) and the
shared rate budget's Redis key (:mod:`ometria_sync.pacing.redis_budget`) both use it: every
process the state treats as the same account shares one budget (``.../v2`` and ``.../v2/``
post to the same URL and count against the same limit).

Redaction: a client library takes secrets from more than the userinfo: asyncpg and libpq read
``?password=`` and ``?sslpassword=``, redis-py turns every query parameter into a keyword
(``?password=``, ``?ssl_password=``), a pre-signed URL carries ``X-Amz-Signature``. So a query
parameter whose name looks secret (:data:`SECRET_WORDS`) is a secret too, and so is a bare
Redis user (``redis://TOKEN@host``: a token, not a name).

Guarantee: no secret the client library would use appears in :func:`redact_url`'s output nor in
a text passed through :func:`scrub` / :func:`safe_message` with its URL; everything else of the
URL (scheme, user name, hosts, port, path, other parameters) is kept as written.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal
from urllib.parse import unquote, unquote_plus, urlsplit, urlunsplit

import msgspec

#: a query parameter whose lower-cased name contains one of these holds a secret
SECRET_WORDS = ("pass", "pwd", "secret", "token", "auth", "credential", "sig", "key")
#: schemes whose bare user (no password) is the secret itself
_TOKEN_USER_SCHEMES = ("redis", "rediss", "unix")
MASK = "***"
UNPARSABLE = "<a URL that cannot be parsed>"

#: a SQLite state URL is this, then the file's path
SQLITE_PREFIX = "sqlite:///"
#: a PostgreSQL state URL starts with one of these
POSTGRES_PREFIXES = ("postgresql://", "postgres://")
#: the shared budget's Redis URL has one of these schemes
REDIS_SCHEMES = ("redis", "rediss")
#: the schema a PostgreSQL store lives in unless ``state.schema`` names another
DEFAULT_SCHEMA = "ometria_sync"
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class StateUrl(msgspec.Struct, frozen=True, kw_only=True):
    """Where the state is, as ``state.checkpoint_url`` names it: a SQLite file (``path``) or a
    PostgreSQL database (``dsn``, the URL as written)."""

    kind: Literal["sqlite", "postgres"]
    #: the SQLite file ('' for PostgreSQL)
    path: str = ""
    #: the PostgreSQL DSN ('' for SQLite)
    dsn: str = ""

    @property
    def names_host(self) -> bool:
        """A PostgreSQL DSN that names its server (``//HOST`` or ``?host=``)."""
        return bool(urlsplit(self.dsn).hostname) or "host=" in self.dsn


def parse_state_url(url: str) -> StateUrl | None:
    """``sqlite:///PATH`` or ``postgresql://...`` / ``postgres://...``; None for any other."""
    if url.startswith(SQLITE_PREFIX):
        return StateUrl(kind="sqlite", path=url[len(SQLITE_PREFIX):])
    if url.startswith(POSTGRES_PREFIXES):
        return StateUrl(kind="postgres", dsn=url)
    return None


def url_scheme(url: str) -> str:
    """What a message may show of a URL it refuses: the text before the first ``:``, never
    more (``mysql:PASSWORD@host`` has no ``//``; what follows its colon may be a secret)."""
    return url.split(":", 1)[0]


def sqlite_url(path: str) -> str:
    """The state URL of the SQLite file at ``path``."""
    return SQLITE_PREFIX + path


def is_schema_name(schema: str) -> bool:
    """A plain lower-case SQL name, matched whole (a trailing newline reaches the same tables
    and must not pass)."""
    return _SCHEMA_NAME.fullmatch(schema) is not None


def is_redis_url(url: str) -> bool:
    """A redis:// or rediss:// URL."""
    try:
        scheme = urlsplit(url).scheme
    except ValueError:
        scheme = ""
    return scheme in REDIS_SCHEMES


def base_url_problem(url: str) -> str | None:
    """What is wrong with an HTTP API's base URL (Ometria's, Omneo's), or None: it must be
    http(s) with a host, and plain http:// only to a loopback host. The message shows the URL
    redacted."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return f"not an http(s) URL: {redact_url(url)!r}"
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        return ("plain http:// is only allowed for loopback hosts (127.0.0.1, localhost); "
                "use https://")
    return None


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def normalise_url(url: str) -> str:
    """Lower-case scheme and host, default port and trailing slashes dropped."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), parts.query, ""))


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


#: a MySQL source's DSN has one of these schemes
MYSQL_SCHEMES = ("mysql", "mariadb")


class MysqlDsn(msgspec.Struct, frozen=True, kw_only=True):
    """``mysql://USER:PASSWORD@HOST[:3306]/DATABASE`` (or ``mariadb://``), decoded."""

    host: str
    port: int = 3306
    user: str
    password: str = ""
    database: str

    def __repr__(self) -> str:  # never the password, whatever prints it
        return f"MysqlDsn(host={self.host!r}, port={self.port}, user={self.user!r}, " \
               f"password={MASK if self.password else ''!r}, database={self.database!r})"


def parse_mysql_dsn(dsn: str) -> MysqlDsn:
    """A MySQL DSN's parts; ValueError saying what is wrong (never quoting the DSN, which
    holds the password)."""
    try:
        parts = urlsplit(dsn)
        port = parts.port or 3306
    except ValueError:
        raise ValueError(f"not a URL (expected {MYSQL_SCHEMES[0]}://USER:PASSWORD@HOST"
                         "[:3306]/DATABASE)") from None
    if parts.scheme not in MYSQL_SCHEMES:
        raise ValueError(f"the scheme must be mysql:// or mariadb://, got "
                         f"{url_scheme(dsn)[:20]!r}")
    database = unquote(parts.path.lstrip("/"))
    if not parts.hostname or not parts.username or not database or "/" in database:
        raise ValueError("expected mysql://USER:PASSWORD@HOST[:3306]/DATABASE (user, host "
                         "and database are required)")
    if parts.query or parts.fragment:
        raise ValueError("query parameters are not read (expected "
                         "mysql://USER:PASSWORD@HOST[:3306]/DATABASE)")
    return MysqlDsn(host=parts.hostname, port=port, user=unquote(parts.username),
                    password=unquote(parts.password or ""), database=database)


def dsn_message(exc: BaseException, dsn: str) -> str:
    """A failed connection's error (the PostgreSQL source's): its first line without the DSN's
    secrets, and without anything else that looks like a connection string."""
    text = scrub(str(exc).splitlines()[0] if str(exc) else "", dsn)
    return "(details hidden: they contain the DSN)" if "://" in text else text
