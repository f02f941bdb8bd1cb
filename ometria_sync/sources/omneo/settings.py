"""The settings of the ``omneo_profiles`` and ``omneo_transactions`` source tables: their keys
and checks. The readers take these; :mod:`.config` gives each the ``open()`` that builds its
reader (so the settings never import the readers, and the readers import the settings).

    source = { kind = "omneo_profiles", tenant = "acme", token_env = "OMNEO_TOKEN" }

Omneo has its own token (from the environment or a file, never from the job file, never
logged), its own pacer and its own concurrency, separate from Ometria's. Where Omneo's API is
unconfirmed (query parameter names, sort fields, whether ``price_sell`` is per unit) the choice
is a setting with the documented default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import msgspec

from ometria_sync.errors import ConfigError
from ometria_sync.net import HttpRetrySettings, base_url_problem, read_credential, redact_url
from ometria_sync.sources.base import SourceConfig
from ometria_sync.sources.files.location import resolve_path
from ometria_sync.sources.omneo.normalise import Unusable, known_zone
from ometria_sync.sources.omneo.properties import CONTACT_NAMES, ORDER_NAMES, PropertyMapping

ProductIdSource = Literal["variant_external_id", "product_variant_external_id", "sku",
                          "product_variant_sku", "product_variant_id", "product_id"]


class OmneoSourceConfig(SourceConfig, HttpRetrySettings, frozen=True, kw_only=True):
    """What both Omneo sources take: where Omneo is, how fast to read it, how to read it."""

    #: the name in ``https://{tenant}.manager.getomneo.com``; or give ``base_url``
    tenant: str | None = None
    #: default ``https://api.{tenant}.getomneo.com/api/v3``
    base_url: str | None = None
    token_env: str = "OMNEO_TOKEN"
    #: read the token from this file instead (wins over ``token_env``)
    token_file: str | None = None
    rate_limit_per_second: Annotated[float, msgspec.Meta(gt=0, le=1000)] = 5.0
    #: Omneo requests in flight at once (aggregations, profile look-ups, pages)
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=256)] = 8
    page_size: Annotated[int, msgspec.Meta(ge=1, le=100)] = 100
    #: zone of date-times Omneo writes without an offset (an IANA name)
    timezone: str = "UTC"
    #: the ``sort`` value: ascending, ties broken by id (the checkpoint relies on this order)
    sort: str = "updated_at,id"
    #: the query parameter taking the updated-at lower bound; "" reads everything every run
    updated_filter: str = "filter[updated_at]"
    page_size_param: str = "page[size]"
    page_number_param: str = "page[number]"
    #: seconds before the checkpoint to read again (late commits); change detection drops
    #: what Ometria already has
    lookback_seconds: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    #: what becomes Ometria's ``customer_id``: the profile id, its external_id, or the
    #: identifier of its identity with ``identity_handle``
    customer_id: Literal["id", "external_id", "identity"] = "id"
    identity_handle: str | None = None
    properties: PropertyMapping = msgspec.field(default_factory=PropertyMapping)

    @property
    def url(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        return f"https://api.{self.tenant}.getomneo.com/api/v3"

    def resolve(self, base_dir: Path) -> OmneoSourceConfig:
        return msgspec.structs.replace(
            self,
            token_file=resolve_path(base_dir, self.token_file) if self.token_file else None,
            ca_bundle=resolve_path(base_dir, self.ca_bundle) if self.ca_bundle else None,
        )

    def check(self, key: str) -> None:
        self._check_url(key)
        try:
            known_zone(self.timezone)
        except Unusable as exc:
            raise ConfigError(f"{key}.timezone", str(exc)) from None
        if self.customer_id == "identity" and not self.identity_handle:
            raise ConfigError(f"{key}.identity_handle",
                              'required with customer_id = "identity" (e.g. "shopify")')
        if self.ca_bundle and not Path(self.ca_bundle).is_file():
            raise ConfigError(f"{key}.ca_bundle", f"no such file: {self.ca_bundle}")
        self.properties.check(f"{key}.properties", self.names())

    def names(self) -> tuple[str, ...]:
        """The base names of the properties this source fills."""
        raise NotImplementedError

    def _check_url(self, key: str) -> None:
        if not (self.base_url or self.tenant):
            raise ConfigError(f"{key}.tenant", "set tenant (or base_url)")
        problem = base_url_problem(self.url)
        if problem:
            raise ConfigError(f"{key}.base_url", problem)

    def check_credentials(self, key: str) -> None:
        if self.token_file:
            if not Path(self.token_file).is_file():
                raise ConfigError(f"{key}.token_file", f"no such file: {self.token_file}")
        elif not os.environ.get(self.token_env, "").strip():
            raise ConfigError(f"{key}.token_env", f"the environment variable {self.token_env} "
                                                  "is not set (it holds the Omneo API token)")

    #: the collection this source lists (``/profiles``, ``/transactions``)
    list_path: ClassVar[str] = ""

    def read_token(self) -> str:
        """The token; the ConfigError names where it looked, never the token."""
        return read_credential(
            path=self.token_file, file_key="token_file", env_name=self.token_env,
            env_key="token_env", holds="the Omneo API token")


def check_shared_tenants(sources: list[tuple[str, SourceConfig]]) -> None:
    """Streams reading one Omneo tenant share one pacer, so they must agree on its rate."""
    first: dict[str, tuple[str, float]] = {}
    for key, source in sources:
        if not isinstance(source, OmneoSourceConfig):
            continue
        rate = source.rate_limit_per_second
        other, other_rate = first.setdefault(source.url.lower(), (key, rate))
        if other_rate != rate:
            raise ConfigError(f"{key}.rate_limit_per_second",
                              f"{redact_url(source.url)} is also read by {other} at "
                              f"{other_rate}/s; the "
                              "streams of one Omneo tenant share one pacer: give them one rate")


class OmneoProfilesSettings(OmneoSourceConfig, frozen=True, kw_only=True):
    """Profiles changed since the checkpoint, each with its aggregations, as contacts."""

    #: the contacts' ``@collection``
    collection: str = "omneo"
    #: profiles of these types are not sent
    skip_profile_types: list[str] = msgspec.field(
        default_factory=lambda: ["deleted", "temporary", "system"])
    #: fetch ``/profiles/{id}/aggregations`` for each profile (one request each)
    aggregations: bool = True
    #: leave out Omneo's placeholder name "Unknown"
    drop_unknown_names: bool = True
    #: send NOT_SPECIFIED when the profile neither opted in nor out (else leave it out)
    optin_not_specified: bool = True

    list_path: ClassVar[str] = "/profiles"

    def names(self) -> tuple[str, ...]:
        return CONTACT_NAMES


class OmneoTransactionsSettings(OmneoSourceConfig, frozen=True, kw_only=True):
    """Transactions changed since the checkpoint, as orders."""

    #: ``"prefixed"``: ``order_id_prefix`` + Omneo's id; ``"external_id"``: the receipt number
    order_id: Literal["prefixed", "external_id"] = "prefixed"
    order_id_prefix: str = "omneo-"
    #: used when neither the transaction nor its profile names a currency
    default_currency: str | None = None
    #: ``channel`` when ``systems`` has neither ``web`` nor ``pos``
    default_channel: str | None = None
    #: where a line item's ``product_id`` comes from: the first of these that is set
    product_id: list[ProductIdSource] = msgspec.field(default_factory=lambda: [
        "variant_external_id", "product_variant_external_id", "sku"])
    #: whether Omneo's ``price_sell`` is the price of one unit or of the whole line
    price_sell: Literal["unit", "line"] = "unit"
    #: ``GET /profiles/{id}`` when a transaction does not carry its profile's email
    lookup_profiles: bool = True
    #: the ``include`` parameter of the transaction list ("" sends none), e.g. "profile"
    include: str = ""

    list_path: ClassVar[str] = "/transactions"

    def names(self) -> tuple[str, ...]:
        return ORDER_NAMES

    def check(self, key: str) -> None:
        super().check(key)
        code = self.default_currency
        if code is not None and (len(code) != 3 or not code.isalpha() or not code.isupper()):
            raise ConfigError(f"{key}.default_currency",
                              f"expected an ISO 4217 code such as \"AUD\", got {code!r}")
        if not self.product_id:
            raise ConfigError(f"{key}.product_id", "name at least one source of product ids")
