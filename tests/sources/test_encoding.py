"""``encoding`` of file sources: the name checked once, cp1252 files read right, a file not
valid in its encoding refused line by line with one reason, and the fingerprint carrying it."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ometria_sync.errors import ConfigError, SourceError
from ometria_sync.pipeline.stats import reason_key
from ometria_sync.schemas import Problem
from ometria_sync.sources.base import SourceItem
from ometria_sync.sources.files import CsvSourceConfig, GlobSourceConfig, JsonlSourceConfig
from ometria_sync.sources.files.csv import CsvOptions, CsvPart, read_header
from ometria_sync.sources.files.encoding import codec_name
from ometria_sync.sources.files.jsonl import JsonlPart, decode_encoded
from ometria_sync.sources.files.location import LocalFile
from tests.s3 import Bucket

CP1252 = CsvOptions(columns={"id": "id", "name": "firstname"}, encoding="cp1252")
UTF8 = CsvOptions(columns={"id": "id", "name": "firstname"})
HINT = 'not valid utf-8: set source.encoding (e.g. "cp1252") if the file is not UTF-8'


async def _items(part: CsvPart | JsonlPart) -> list[SourceItem]:
    return [item async for chunk in part.read(None) for item in chunk]


def test_codec_names_are_checked_and_made_canonical() -> None:
    """Aliases become Python's codec name; UTF-8 with or without BOM is the fast path."""
    assert codec_name("k", "windows-1252") == "cp1252"
    assert codec_name("k", "UTF8") == codec_name("k", "utf-8-sig") == "utf-8"
    assert codec_name("k", "Shift_JIS") == "shift_jis"


@pytest.mark.parametrize(("name", "says"), [
    ("cp9999", "unknown encoding 'cp9999'"),
    ("base64", "is not a text encoding"),
    ("utf-16", "convert the file to UTF-8"),
    ("utf-7", "convert the file to UTF-8"),
])
def test_an_encoding_that_cannot_be_read_is_a_config_error_naming_the_key(
        name: str, says: str) -> None:
    with pytest.raises(ConfigError) as raised:
        codec_name("streams[0].source.encoding", name)
    assert raised.value.key == "streams[0].source.encoding" and says in str(raised.value)


@pytest.mark.parametrize("config", [
    CsvSourceConfig(path="x.csv", encoding="nope"),
    JsonlSourceConfig(path="x.jsonl", encoding="nope"),
    GlobSourceConfig(pattern="*.jsonl", encoding="nope"),
])
def test_every_file_source_checks_its_encoding_first(
        config: CsvSourceConfig | JsonlSourceConfig | GlobSourceConfig) -> None:
    """Before the path is looked at: the key named is the encoding's."""
    with pytest.raises(ConfigError) as raised:
        config.check("streams[0].source")
    assert raised.value.key == "streams[0].source.encoding"


async def test_a_cp1252_csv_is_read_with_its_characters(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes("id,name\nc1,Zoë\nc2,Renée\u2019s €5\n".encode("cp1252"))
    items = await _items(CsvPart(LocalFile(path), CP1252))
    assert [i.record for i in items] == [{"id": "c1", "firstname": "Zoë"},
                                         {"id": "c2", "firstname": "Renée\u2019s €5"}]
    assert items[-1].position == (path.stat().st_size, 3)


async def test_a_cp1252_csv_read_as_utf8_gives_one_reason_naming_the_option(
        tmp_path: Path) -> None:
    """Friction 13: the summary had one group per byte offset; now every bad line has the
    same reason (by ``reason_key``), naming the encoding, the option and, after it, the byte."""
    path = tmp_path / "c.csv"
    path.write_bytes("id,name\nc1,Zoë\nc2,Ann\nc3,Renée\n".encode("cp1252"))
    items = await _items(CsvPart(LocalFile(path), UTF8))
    assert [(i.line, i.record) for i in items] == [(2, None), (3, {"id": "c2",
                                                                   "firstname": "Ann"}), (4, None)]
    refused = [i for i in items if i.error]
    assert refused[0].error == f"{HINT}, got byte 0xEB at byte 6 of the line"
    assert refused[1].error == f"{HINT}, got byte 0xE9 at byte 7 of the line"
    assert {reason_key(Problem("", i.error or "")) for i in refused} == {HINT}
    assert refused[0].raw == '{"id":"c1","name":"Zo\ufffd"}'.encode()


async def test_a_byte_cp1252_does_not_define_is_refused_naming_cp1252(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes(b"id,name\nc1,A\x81B\n")
    (item,) = await _items(CsvPart(LocalFile(path), CP1252))
    assert item.error == ("not valid cp1252: check source.encoding (the file's bytes do not "
                          "fit it), got byte 0x81 at byte 5 of the line")


def test_a_header_not_valid_in_the_encoding_names_it(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes("id,prénom\n".encode("cp1252"))
    with pytest.raises(SourceError, match=r"the header is not valid utf-8: set source\.encoding"):
        read_header(lambda: path.open("rb"), UTF8, "c.csv")
    assert read_header(lambda: path.open("rb"), CP1252, "c.csv")[0] == ["id", "prénom"]


async def test_a_cp1252_jsonl_is_read_and_its_raw_text_kept(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes('{"id":"c1","firstname":"Zoë"}\n{"id":"c2",\n'.encode("cp1252"))
    first, second = await _items(JsonlPart(LocalFile(path), encoding="cp1252"))
    assert first.record == {"id": "c1", "firstname": "Zoë"} and first.error is None
    assert second.error is not None and second.error.startswith("invalid JSON")
    assert second.raw == '{"id":"c2",'
    (utf8_first, _) = await _items(JsonlPart(LocalFile(path)))
    assert utf8_first.error == f"{HINT}, got byte 0xEB at byte 27 of the line"


async def test_the_encoding_is_part_of_the_fingerprint(tmp_path: Path) -> None:
    """Reading the file in another encoding starts from the top (rows refused as undecodable
    are behind the checkpoint); UTF-8 keeps the fingerprint checkpoints already hold."""
    path = tmp_path / "c.csv"
    path.write_bytes(b"id,name\n")
    plain = await LocalFile(path).fingerprint()
    assert await CsvPart(LocalFile(path), UTF8).fingerprint() == plain
    assert await CsvPart(LocalFile(path), CP1252).fingerprint() == f"{plain}:cp1252"
    assert await JsonlPart(LocalFile(path), encoding="cp1252").fingerprint() == f"{plain}:cp1252"


async def test_a_glob_reads_each_file_in_its_encoding(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes('{"id":"a","firstname":"Zoë"}\n'.encode("cp1252"))
    source = GlobSourceConfig(pattern=str(tmp_path / "*.jsonl"), encoding="cp1252").open()
    (part,) = await source.parts()
    assert [i.record for i in await _items(part)] == [  # type: ignore[arg-type]
        {"id": "a", "firstname": "Zoë"}]


# cp1252's printable characters beyond ASCII, and ASCII without the CSV's own syntax
_CP1252_TEXT = st.text(st.sampled_from(
    [chr(c) for c in range(0x20, 0x7F) if chr(c) not in ',"']
    + [bytes([b]).decode("cp1252") for b in range(0xA0, 0x100)]
    + [c for b in range(0x80, 0xA0) if (c := bytes([b]).decode("cp1252", "ignore"))]),
    min_size=1, max_size=12)


def _csv_bytes(rows: list[list[str]], encoding: str) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "name"])
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


def _mapped(cid: str, name: str) -> dict[str, str]:
    """The record a row maps to: cells are trimmed (``trim = true``), an empty one left out."""
    return {"id": cid, **({"firstname": name.strip()} if name.strip() else {})}


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(_CP1252_TEXT, min_size=1, max_size=20))
async def test_any_cp1252_file_reads_back_exactly_and_utf8_refuses_each_bad_line_once(
        tmp_path: Path, names: list[str]) -> None:
    """With encoding = "cp1252" every row comes back as written, at true byte offsets; read as
    UTF-8, each row either decodes to the same text or is refused, naming its line, with the
    one reason: never a crash, never a row lost or shifted."""
    rows = [[f"c{n}", name] for n, name in enumerate(names)]
    path = tmp_path / "p.csv"
    data = _csv_bytes(rows, "cp1252")
    path.write_bytes(data)
    items = await _items(CsvPart(LocalFile(path), CP1252))
    assert [i.record for i in items] == [_mapped(f"c{n}", name) for n, name in enumerate(names)]
    assert items[-1].position == (len(data), len(rows) + 1)
    as_utf8 = await _items(CsvPart(LocalFile(path), UTF8))
    assert [(i.line, i.position) for i in as_utf8] == [(i.line, i.position) for i in items]
    for item, (cid, name) in zip(as_utf8, rows, strict=True):
        try:
            text: str | None = name.encode("cp1252").decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None:
            assert item.record == _mapped(cid, text)
        else:
            assert item.record is None and item.error is not None
            assert reason_key(Problem("", item.error)) == HINT


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=48), encoding=st.sampled_from(["cp1252", "latin-1", "shift_jis"]))
def test_any_bytes_in_any_encoding_decode_or_give_the_one_reason(raw: bytes, encoding: str) -> None:
    """A JSON line in another encoding: its value, or a reason naming the encoding (when the
    bytes do not decode) or saying it is not JSON; never an exception."""
    canonical = codec_name("encoding", encoding)
    value, shown, reason = decode_encoded(raw, canonical)
    try:
        text = raw.decode(canonical)
    except UnicodeDecodeError:
        assert value is None and reason is not None
        assert reason.startswith(f"not valid {canonical}: check source.encoding")
        assert "\ufffd" in str(shown)
    else:
        assert shown == text
        assert reason is None or reason.startswith("invalid JSON")


async def test_objects_in_a_store_are_read_in_the_encoding(s3: Bucket) -> None:
    """s3:// CSV (its header checked at preflight in the encoding) and a JSON Lines glob."""
    store = {"endpoint_url": s3.server.url}
    csv_url = s3.put("c.csv.gz", gzip.compress("id,name\nc1,Zoë\n".encode("cp1252")))
    config = CsvSourceConfig(path=csv_url, columns={"name": "firstname"}, encoding="cp1252",
                             **store)
    await config.preflight("streams[0].source")
    (part,) = await config.open().parts()
    assert [i.record for i in await _items(part)] == [  # type: ignore[arg-type]
        {"id": "c1", "firstname": "Zoë"}]
    assert (await part.fingerprint() or "").endswith(":cp1252")
    s3.put("drops/a.jsonl", '{"id":"a","firstname":"Renée"}\n'.encode("cp1252"))
    glob = GlobSourceConfig(pattern=f"s3://{s3.name}/drops/*.jsonl", encoding="cp1252", **store)
    (part,) = await glob.open().parts()
    assert [i.record for i in await _items(part)] == [  # type: ignore[arg-type]
        {"id": "a", "firstname": "Renée"}]
