"""The Omneo source tables of the job file: defaults, and every error naming its key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ometria_sync.config import Job
from ometria_sync.errors import ConfigError
from ometria_sync.sources.omneo import OmneoProfilesConfig, OmneoTransactionsConfig

MakeJob = Callable[..., Job]


def stream(kind: str, source: str, record_type: str = "contact") -> str:
    return (f'[[streams]]\nname = "s"\nrecord_type = "{record_type}"\n'
            f'[streams.source]\nkind = "{kind}"\n{source}\n')


def test_defaults_and_the_tenant_url(make_job: MakeJob) -> None:
    job = make_job(streams=stream("omneo_profiles", 'tenant = "acme"'))
    source = job.streams[0].source
    assert isinstance(source, OmneoProfilesConfig)
    assert source.url == "https://api.acme.getomneo.com/api/v3"
    assert (source.token_env, source.rate_limit_per_second, source.concurrency,
            source.page_size, source.timezone, source.sort, source.updated_filter) == (
        "OMNEO_TOKEN", 5.0, 8, 100, "UTC", "updated_at,id", "filter[updated_at]")
    assert source.properties.prefix == "omneo_" and source.collection == "omneo"


def test_a_transactions_table_with_nested_properties(make_job: MakeJob) -> None:
    job = make_job(streams=stream(
        "omneo_transactions",
        'base_url = "https://acme.getomneo.com/api/v3/"\ndefault_currency = "AUD"\n'
        'product_id = ["sku"]\nprice_sell = "line"\n'
        '[streams.source.properties]\nprefix = ""\nrename = { receipt_ref = "receipt" }\n',
        "order"))
    source = job.streams[0].source
    assert isinstance(source, OmneoTransactionsConfig)
    assert source.url == "https://acme.getomneo.com/api/v3"
    assert source.properties.name("receipt_ref") == "receipt"
    assert (source.product_id, source.price_sell) == (["sku"], "line")


def test_the_token_file_resolves_against_the_job_folder(make_job: MakeJob,
                                                        tmp_path: Path) -> None:
    (tmp_path / "omneo.token").write_text("t0ken\n")
    job = make_job(streams=stream("omneo_profiles", 'tenant = "a"\ntoken_file = "omneo.token"'))
    source = job.streams[0].source
    assert isinstance(source, OmneoProfilesConfig)
    assert source.token_file == str(tmp_path / "omneo.token") and source.read_token() == "t0ken"


ERRORS = [
    ("", "streams[0].source.tenant: set tenant (or base_url)"),
    ('base_url = "http://omneo.example.com/api/v3"',
     "streams[0].source.base_url: plain http:// is only allowed for loopback hosts"),
    ('base_url = "ftp://x"', "streams[0].source.base_url: not an http(s) URL"),
    ('tenant = "a"\ntimezone = "Melbourne"',
     'streams[0].source.timezone: not a known time zone: "Melbourne"'),
    ('tenant = "a"\ncustomer_id = "identity"', "streams[0].source.identity_handle: required"),
    ('tenant = "a"\npage_size = 101', "streams[0].source.page_size: expected `int` <= 100"),
    ('tenant = "a"\nconcurrency = 0', "streams[0].source.concurrency: expected `int` >= 1"),
    ('tenant = "a"\ncustomer_id = "email"',
     "streams[0].source.customer_id: invalid enum value 'email'"),
    ('tenant = "a"\ntoken = "abc"', "streams[0].source.token: unknown key"),
    ('tenant = "a"\nproperties = { rename = { spend = "x" } }',
     "streams[0].source.properties.rename.spend: no such property; known: spend_12m"),
    ('tenant = "a"\nproperties = { drop = ["nope"] }',
     "streams[0].source.properties.drop.nope: no such property"),
    ('tenant = "a"\nproperties = { rename = { spend_12m = "spend_all" } }',
     "streams[0].source.properties.rename.spend_all: 'omneo_spend_all' is also the name of "
     "'spend_12m'"),
    ('tenant = "a"\nproperties = { prefix = "@", rename = {} }',
     "streams[0].source.properties.rename.spend_12m: not a usable name: '@spend_12m'"),
]


@pytest.mark.parametrize(("source", "message"), ERRORS)
def test_profile_source_errors_name_the_key(make_job: MakeJob, source: str,
                                            message: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_job(streams=stream("omneo_profiles", source))
    assert str(info.value).startswith(message), str(info.value)


@pytest.mark.parametrize(("source", "message"), [
    ('tenant = "a"\ntoken_env = "NO_SUCH_OMNEO_TOKEN"',
     "streams[0].source.token_env: the environment variable NO_SUCH_OMNEO_TOKEN is not set"),
    ('tenant = "a"\ntoken_file = "missing.token"', "streams[0].source.token_file: no such file"),
])
def test_a_missing_token_is_refused_by_what_reads_the_source_not_by_loading(
        make_job: MakeJob, source: str, message: str) -> None:
    job = make_job(streams=stream("omneo_profiles", source))  # status, reset need no token
    with pytest.raises(ConfigError) as info:
        job.check_credentials()
    assert str(info.value).startswith(message), str(info.value)


@pytest.mark.parametrize(("source", "message"), [
    ('tenant = "a"\ndefault_currency = "aud"',
     'streams[0].source.default_currency: expected an ISO 4217 code such as "AUD"'),
    ('tenant = "a"\nproduct_id = []', "streams[0].source.product_id: name at least one"),
    ('tenant = "a"\nproduct_id = ["ean"]', "streams[0].source.product_id[0]: invalid enum"),
    ('tenant = "a"\nproperties = { drop = ["spend_12m"] }',
     "streams[0].source.properties.drop.spend_12m: no such property; known: external_id"),
])
def test_transaction_source_errors_name_the_key(make_job: MakeJob, source: str,
                                                message: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_job(streams=stream("omneo_transactions", source, "order"))
    assert str(info.value).startswith(message), str(info.value)


def test_the_kinds_are_listed_when_one_is_misspelt(make_job: MakeJob) -> None:
    with pytest.raises(ConfigError, match="omneo_profiles, omneo_transactions"):
        make_job(streams=stream("omneo", 'tenant = "a"'))


def test_the_token_is_read_at_open_never_stored(monkeypatch: Any) -> None:
    monkeypatch.setenv("OMNEO_TOKEN", "  s3cret \n")
    config = OmneoProfilesConfig(tenant="a")
    assert config.read_token() == "s3cret" and "s3cret" not in repr(config)
    monkeypatch.delenv("OMNEO_TOKEN")
    with pytest.raises(ConfigError, match="OMNEO_TOKEN is not set"):
        config.read_token()


def test_streams_of_one_tenant_must_agree_on_its_rate() -> None:
    """They share one pacer: two rates for one tenant are a configuration error naming both."""
    from ometria_sync.sources.omneo.settings import check_shared_tenants

    a = OmneoProfilesConfig(tenant="acme", rate_limit_per_second=5)
    b = OmneoTransactionsConfig(tenant="acme", rate_limit_per_second=8)
    other = OmneoTransactionsConfig(tenant="other", rate_limit_per_second=8)
    check_shared_tenants([("streams[0].source", a), ("streams[1].source", other)])
    with pytest.raises(ConfigError, match=r"streams\[0\].source at 5/s") as caught:
        check_shared_tenants([("streams[0].source", a), ("streams[1].source", b)])
    assert caught.value.key == "streams[1].source.rate_limit_per_second"
