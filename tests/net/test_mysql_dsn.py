"""The MySQL source's DSN: every part read back as written (percent-decoded), and the
password in no refusal and no repr."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ometria_sync.net import parse_mysql_dsn, redact_url

_NAME = st.text("abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=12)
_SECRET = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0,
                  max_size=24)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["mysql", "mariadb"]), _NAME, _SECRET, _NAME,
       st.one_of(st.none(), st.integers(1, 65535)), _NAME)
def test_every_part_is_read_back_and_the_password_is_never_shown(
        scheme: str, user: str, password: str, host: str, port: int | None,
        database: str) -> None:
    password = "§" + password  # in no other part, nor in any fixed text of a message
    where = f"{host}:{port}" if port else host
    dsn = f"{scheme}://{user}:{quote(password, safe='')}@{where}/{database}"
    parsed = parse_mysql_dsn(dsn)
    assert (parsed.user, parsed.password, parsed.host, parsed.port, parsed.database) == (
        user, password, host, port or 3306, database)
    assert redact_url(dsn) == f"{scheme}://{user}:***@{where}/{database}"
    assert password not in repr(parsed)
    for broken in (dsn + "?ssl=1", dsn.replace(f"/{database}", ""),
                   dsn.replace(scheme, "postgresql", 1), dsn.replace(f"{user}:", ":", 1)):
        with pytest.raises(ValueError) as refused:
            parse_mysql_dsn(broken)
        assert password not in str(refused.value)
        assert quote(password, safe="") not in str(refused.value)


def test_the_forms_a_reader_meets() -> None:
    parsed = parse_mysql_dsn("mariadb://shop%40ro:p%2Fw@db.internal/magento")
    assert (parsed.user, parsed.password, parsed.host, parsed.port, parsed.database) == (
        "shop@ro", "p/w", "db.internal", 3306, "magento")
    assert parse_mysql_dsn("mysql://root@127.0.0.1:3307/test").password == ""
    with pytest.raises(ValueError, match=re.escape(
            "the scheme must be mysql:// or mariadb://, got 'mysql+pymysql'")):
        parse_mysql_dsn("mysql+pymysql://u:pw@h/d")
    with pytest.raises(ValueError, match="not a URL"):
        parse_mysql_dsn("mysql://u:pw@h:99999999/d")
