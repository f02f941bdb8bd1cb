"""The one URL redaction: no secret a client library would use survives it, the rest does."""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ometria_sync.net.urls import redact_url, safe_message, scrub, url_secrets

CANARY = "canary-pw-41c7e09b"
_NAME = st.text("abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=12)
#: secrets are long enough not to appear elsewhere in the URL by chance
_SECRET = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=8,
                  max_size=24)
_SECRET_NAMES = ["password", "sslpassword", "ssl_password", "PASSWORD", "X-Amz-Signature",
                 "access_token", "api_key"]
_SECRET_PARAMS = st.sampled_from(_SECRET_NAMES)
_PLAIN_PARAMS = st.sampled_from(["sslmode", "db", "application_name", "timeout", "region"])


@st.composite
def _urls(draw: st.DrawFn) -> tuple[str, str, list[str], list[str]]:
    """(a URL, its secret, the parts that must survive, every part but the secret)."""
    scheme = draw(st.sampled_from(["postgresql", "postgres", "mysql", "mariadb", "redis", "rediss",
                                   "https"]))
    host = draw(_NAME) + ".example"
    port = draw(st.integers(1, 65535))
    path = "/" + draw(_NAME)
    secret = draw(_SECRET)
    user = draw(_NAME)
    plain = [(draw(_PLAIN_PARAMS), draw(_NAME)) for _ in range(draw(st.integers(0, 2)))]
    where = draw(st.sampled_from(["userinfo", "query", "both"]))
    userinfo = f"{user}:{quote(secret, safe='')}@" if where != "query" else f"{user}@"
    params = [f"{k}={v}" for k, v in plain]
    if where != "userinfo":
        params.insert(draw(st.integers(0, len(params))),
                      f"{draw(_SECRET_PARAMS)}={quote(secret, safe='')}")
    query = "?" + "&".join(params) if params else ""
    url = f"{scheme}://{userinfo}{host}:{port}{path}{query}"
    keep = [f"{scheme}://", host, str(port), path, *params_of(plain)]
    if where == "query" and scheme not in ("redis", "rediss"):
        keep.append(user)
    return url, secret, keep, [*keep, user, scheme, *_SECRET_NAMES]


def params_of(plain: list[tuple[str, str]]) -> list[str]:
    return [f"{k}={v}" for k, v in plain]


@settings(max_examples=300, deadline=None)
@given(_urls())
def test_no_secret_survives_and_the_rest_does(
        case: tuple[str, str, list[str], list[str]]) -> None:
    """For any URL with a password in the userinfo or the query, the redacted URL holds
    neither the secret nor its percent-encoded form, and keeps every other part."""
    url, secret, keep, parts = case
    assume(all(secret not in part for part in parts))
    redacted = redact_url(url)
    assert secret not in redacted and quote(secret, safe="") not in redacted
    assert "***" in redacted
    for part in keep:
        assert part in redacted
    message = scrub(f"cannot connect to {url} (password {secret!r} refused)", url)
    assert secret not in message and quote(secret, safe="") not in message


def test_the_forms_a_reader_meets() -> None:
    assert redact_url(f"postgresql://sync:{CANARY}@db:5432/x") == "postgresql://sync:***@db:5432/x"
    assert (redact_url(f"postgresql://postgres@127.0.0.1:1/x?password={CANARY}&sslmode=require")
            == "postgresql://postgres@127.0.0.1:1/x?password=***&sslmode=require")
    assert redact_url(f"redis://127.0.0.1:6379/5?password={CANARY}") == (
        "redis://127.0.0.1:6379/5?password=***")
    assert redact_url(f"rediss://:{CANARY}@h.example:6380/1") == "rediss://***@h.example:6380/1"
    assert redact_url(f"redis://{CANARY}@h/0") == "redis://***@h/0"  # a bare token user
    assert redact_url("postgresql://postgres@h/x") == "postgresql://postgres@h/x"
    assert redact_url("redis://[::1/0") == "<a URL that cannot be parsed>"
    assert redact_url(f"https://a.example/v2?x=1&sslpassword={CANARY}") == (
        "https://a.example/v2?x=1&sslpassword=***")


def test_an_error_never_carries_a_secret_of_the_url() -> None:
    url = f"redis://bob:{CANARY}@h/0?ssl_password=other-secret-1"
    assert set(url_secrets(url)) == {CANARY, "other-secret-1"}
    assert safe_message(OSError(f"auth {CANARY} refused"), url) == "auth *** refused"
    assert safe_message(TimeoutError(), url) == "TimeoutError"
    assert safe_message(OSError(f"auth {CANARY}"), None) == f"auth {CANARY}"
