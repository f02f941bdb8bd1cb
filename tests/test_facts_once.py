"""Facts kept once: every place that needs one reads it from where it is defined."""

from __future__ import annotations

from typing import get_args

import msgspec
import pytest

from ometria_sync import config, schemas
from ometria_sync.net.backoff import HttpRetrySettings
from ometria_sync.schemas.records import RECORD_STRUCTS
from ometria_sync.sources import mapping
from ometria_sync.sources.omneo import normalise
from ometria_sync.sources.omneo.config import OmneoSourceConfig
from ometria_sync.sources.registry import SOURCE_KINDS, SourceSpec


def test_record_types_are_defined_once() -> None:
    """The job file's record types, the validator's and the Structs' are one tuple."""
    assert config.RECORD_TYPES is schemas.RECORD_TYPES
    assert get_args(config.RecordType) == schemas.RECORD_TYPES
    assert tuple(RECORD_STRUCTS) == schemas.RECORD_TYPES


def test_source_kinds_come_from_the_union() -> None:
    """Every tag of the SourceSpec union is a kind, in the union's order."""
    tags = tuple(spec.__struct_config__.tag for spec in get_args(SourceSpec))
    assert tags == SOURCE_KINDS


def test_retry_settings_are_one_struct() -> None:
    """[ometria] and the Omneo sources take the same retry settings, from one declaration."""
    assert issubclass(config.OmetriaSettings, HttpRetrySettings)
    assert issubclass(OmneoSourceConfig, HttpRetrySettings)
    with pytest.raises(msgspec.ValidationError, match="max_retries"):
        msgspec.convert({"max_retries": -1}, config.OmetriaSettings)
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.convert({"nope": 1}, config.OmetriaSettings)


@pytest.mark.parametrize("word", ["true", "T", " yes ", "y", "1", "false", "f", "No", "n", "0"])
def test_one_boolean_vocabulary(word: str) -> None:
    """CSV cells and Omneo fields read the same words as booleans."""
    assert mapping._boolean(word) == normalise.boolean(word)


def test_the_two_zone_loaders_have_distinct_names() -> None:
    """The configuration's zone loader (ConfigError) and Omneo's (Unusable) are not confused."""
    assert not hasattr(normalise, "load_zone")
    assert normalise.known_zone("UTC").key == "UTC"
    with pytest.raises(normalise.Unusable):
        normalise.known_zone("Not/AZone")
