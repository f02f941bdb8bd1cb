"""The low-level network helpers both HTTP clients depend on (and nothing of this package's
own above them): backoff, Retry-After, the retry settings, TLS and reading a credential
(``http.py``); every URL the job names, parsed, checked and redacted once (``urls.py``)."""

from ometria_sync.net.http import (
    Backoff,
    HttpRetrySettings,
    parse_retry_after,
    read_credential,
    ssl_context,
)
from ometria_sync.net.urls import (
    DEFAULT_SCHEMA,
    MysqlDsn,
    base_url_problem,
    dsn_message,
    is_redis_url,
    is_schema_name,
    normalise_url,
    parse_mysql_dsn,
    parse_state_url,
    redact_url,
    safe_message,
    scrub,
    sqlite_url,
    url_scheme,
)

__all__ = [
    "DEFAULT_SCHEMA",
    "Backoff",
    "HttpRetrySettings",
    "MysqlDsn",
    "base_url_problem",
    "dsn_message",
    "is_redis_url",
    "is_schema_name",
    "normalise_url",
    "parse_mysql_dsn",
    "parse_retry_after",
    "parse_state_url",
    "read_credential",
    "redact_url",
    "safe_message",
    "scrub",
    "sqlite_url",
    "ssl_context",
    "url_scheme",
]
