"""A shop's export as it comes, through the real CLI into the emulator: a Windows-1252 CSV
(``encoding``) and a stream ``transform``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ometria_sync.emulator.behaviour import STORE
from tests.e2e.conftest import Workspace

pytestmark = pytest.mark.e2e

NAMES = ["Zoë", "Ann", "Renée", "Jos\u00e9\u2019s", "Bob", "Françoise", "Anaïs", "Tom"]


def _contacts_job(encoding: str | None) -> str:
    setting = f'\nencoding = "{encoding}"' if encoding else ""
    return f"""
[[streams]]
name = "contacts"
record_type = "contact"
[streams.source]
kind = "csv"
path = "data/customers.csv"
constants = {{ "@collection" = "shop" }}
columns = {{ entity_id = "id", firstname = "firstname" }}{setting}
"""


def _stored(emu: Any) -> dict[str, str]:
    store = emu.app[STORE]
    store.drain(len(store.queue))
    return {key.split("/", 1)[1]: r.get("firstname") for key, r in store.table("contact").items()}


async def test_a_cp1252_export_goes_in_with_its_characters(
        workspace: Workspace, emulator: Any) -> None:
    """Read as UTF-8 (the default) the rows with accents are refused with one reason naming
    the option; with ``encoding = "cp1252"`` the next run reads the file from the top (the
    encoding is part of its fingerprint), sends the rows refused before with the right
    characters, and change detection keeps the ones already sent from going out again."""
    data = workspace.root / "data" / "customers.csv"
    data.parent.mkdir()
    data.write_bytes(("entity_id,firstname\n" + "".join(
        f"{n},{name}\n" for n, name in enumerate(NAMES, 1))).encode("cp1252"))
    workspace.job(_contacts_job(None))
    async with emulator(rate=50) as emu:
        first = await workspace.run("run", "job.toml", url=emu.url)
        dead = workspace.dead_letters()
        workspace.job(_contacts_job("cp1252"))
        second = await workspace.run("run", "job.toml", url=emu.url)
        stored = _stored(emu)
    assert first.code == 3, first.stderr
    assert [d["line"] for d in dead] == [2, 4, 5, 7, 8]
    assert {d["reasons"][0]["message"].split(", got byte")[0] for d in dead} == {
        'not valid utf-8: set source.encoding (e.g. "cp1252") if the file is not UTF-8'}
    summary = first.stdout + first.stderr
    assert summary.count("not valid utf-8") == 1, summary  # one group, not one per byte
    assert second.code == 0, second.stderr
    report = json.loads(sorted((workspace.root / "state" / "reports").glob("*.json"))[-1]
                        .read_text())["streams"][0]
    assert (report["read"], report["unchanged"], report["sent"]) == (8, 3, 5)
    assert stored == {str(n): name for n, name in enumerate(NAMES, 1)}


SHOP_RULES = '''
def contact(record):
    if record.get("firstname") == "test":
        return None  # a test account: skipped
    record["gender"] = {"1": "m", "2": "f"}[record.pop("gender")]
    record["firstname"] = record["firstname"].title()
    return record
'''


def _transform_job(transform: str) -> str:
    return f"""
[[streams]]
name = "contacts"
record_type = "contact"
transform = "{transform}"
[streams.source]
kind = "csv"
path = "data/customers.csv"
constants = {{ "@collection" = "shop" }}
columns = {{ entity_id = "id", firstname = "firstname", gender = "gender" }}
"""


async def test_a_transform_from_the_job_folder_shapes_skips_and_refuses_records(
        workspace: Workspace, emulator: Any) -> None:
    """The stream's transform maps genders and names; None skips a test account (counted as
    filtered, not dead-lettered); a KeyError refuses its record with the exception's last line
    and the run goes on. Change detection hashes the transformed record: a changed transform
    sends the records it changes again, an unchanged one sends nothing."""
    data = workspace.root / "data" / "customers.csv"
    data.parent.mkdir()
    data.write_text("entity_id,firstname,gender\n1,ann,2\n2,test,1\n3,bob,9\n4,tom,1\n")
    (workspace.root / "shop_rules.py").write_text(SHOP_RULES)
    workspace.job(_transform_job("shop_rules:contact"))
    async with emulator(rate=50) as emu:
        first = await workspace.run("run", "job.toml", url=emu.url)
        stored = _stored(emu)
        genders = {k.split("/", 1)[1]: r.get("gender")
                   for k, r in emu.app[STORE].table("contact").items()}
        (workspace.root / "shop_rules.py").write_text(SHOP_RULES.replace("title", "upper"))
        reruns = []
        for _ in range(2):
            data.write_bytes(data.read_bytes())  # a new mtime: the file is read from the top
            reruns.append(await workspace.run("run", "job.toml", url=emu.url))
        upper = _stored(emu)
    assert first.code == 3, first.stderr
    assert stored == {"1": "Ann", "4": "Tom"} and genders == {"1": "f", "4": "m"}
    assert upper == {"1": "ANN", "4": "TOM"}
    (dead,) = workspace.dead_letters()[:1]
    assert (dead["line"], dead["stage"]) == (4, "transform")
    assert dead["reasons"][0]["message"] == "transform shop_rules:contact raised KeyError: '9'"
    reports = sorted((workspace.root / "state" / "reports").glob("*.json"))
    counts = [(r["read"], r["filtered"], r["dead_lettered"], r["unchanged"], r["sent"])
              for r in (json.loads(p.read_text())["streams"][0] for p in reports)]
    assert counts == [(4, 1, 1, 0, 2), (4, 1, 1, 0, 2), (4, 1, 1, 2, 0)]
    # the transform's refusal is the same each night: known to the ledger, so 0 ([run] exit_on)
    assert [r.code for r in reruns] == [0, 0], reruns[0].stdout
    assert all("contacts: 1 still refused since" in r.stdout and "unchanged; 0 new" in r.stdout
               for r in reruns)
    assert "contacts: 1 record(s) skipped by the stream's transform" in first.stdout


async def test_a_transform_that_cannot_be_found_stops_before_anything_is_sent(
        workspace: Workspace, emulator: Any) -> None:
    data = workspace.root / "data" / "customers.csv"
    data.parent.mkdir()
    data.write_text("entity_id,firstname,gender\n1,ann,2\n")
    (workspace.root / "shop_rules.py").write_text(SHOP_RULES)
    workspace.job(_transform_job("shop_rules:contacts"))
    async with emulator(rate=50) as emu:
        result = await workspace.run("run", "job.toml", url=emu.url)
        stats = emu.stats()
    assert result.code == 1
    assert "streams[0].transform: module 'shop_rules'" in result.stderr
    assert "has no function 'contacts'" in result.stderr
    assert stats["requests_by_status"] == {}


async def test_warnings_name_their_records_and_documented_formats_are_refused(
        workspace: Workspace, emulator: Any) -> None:
    """Magento genders (1/2) are sent with a warning that names each record (file:line, id)
    in warnings.jsonl and the report; a "UK" country breaks a documented format and is
    refused with the hint; the summary counts records and problems."""
    data = workspace.root / "data" / "customers.csv"
    data.parent.mkdir()
    data.write_text("entity_id,firstname,gender,country\n1,Ann,2,GB\n2,Bob,1,UK\n"
                    "3,Tom,m,GB\n4,Zoe,2,GB\n")
    workspace.job("""
[[streams]]
name = "contacts"
record_type = "contact"
[streams.source]
kind = "csv"
path = "data/customers.csv"
constants = { "@collection" = "shop" }
columns = { entity_id = "id", firstname = "firstname", gender = "gender", country = "country_id" }
""")
    async with emulator(rate=50) as emu:
        result = await workspace.run("run", "job.toml", url=emu.url)
        stored = _stored(emu)
    assert result.code == 3, result.stderr
    assert sorted(stored) == ["1", "3", "4"]
    (dead,) = workspace.dead_letters()
    assert dead["line"] == 3 and dead["reasons"] == [{
        "path": "country_id", "message": 'must be an ISO 3166-1 alpha-2 country code such as '
                                         '"GB", got "UK" (did you mean "GB"?)'}]
    warnings = [json.loads(line) for line in
                (workspace.root / "state" / "warnings.jsonl").read_text().splitlines()]
    source = str(data)
    assert [(w["source"], w["line"], w["id"], w["path"]) for w in warnings] == [
        (source, 2, "1", "gender"), (source, 3, "2", "gender"), (source, 5, "4", "gender")]
    assert "why records were refused (records, problems)" in result.stdout
    assert "3 warning(s); the records they were given for: " in result.stdout
    report = json.loads(next((workspace.root / "state" / "reports").glob("*.json"))
                        .read_text())["streams"][0]
    assert report["refused_records"] == {
        'country_id: must be an ISO 3166-1 alpha-2 country code such as "GB"': 1}
    assert [s["line"] for s in report["warning_samples"]["gender: is usually one of m, f, o"]
            ] == [2, 3, 5]


async def test_verify_compares_what_the_transform_made(
        workspace: Workspace, emulator: Any) -> None:
    """Ometria holds "Ann" (the transform's title case), the file says "ann": verify applies
    the stream's transform too, so nothing differs (without it every record would)."""
    data = workspace.root / "data" / "customers.csv"
    data.parent.mkdir()
    data.write_text("entity_id,firstname,gender,email\n1,ann,2,ann@example.com\n"
                    "2,test,1,test@example.com\n4,tom,1,tom@example.com\n")
    (workspace.root / "shop_rules.py").write_text(SHOP_RULES)
    workspace.job(_transform_job("shop_rules:contact"))
    async with emulator(rate=50) as emu:
        sent = await workspace.run("run", "job.toml", url=emu.url)
        emu.app[STORE].drain(len(emu.app[STORE].queue))
        verify = await workspace.run("verify", "job.toml", "--all", "--json", url=emu.url)
    assert sent.code == 0, sent.stderr
    assert verify.code == 0, verify.stdout + verify.stderr
    (stream,) = json.loads(verify.stdout)["streams"]
    assert (stream["verified"], stream["invalid"]) == (2, 0)  # the skipped one is not invalid
