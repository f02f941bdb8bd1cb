"""Magento's store views and their configuration (the contract's section 3): which views
there are, which are active, and per view the base URL, currencies, product URL suffix and
the rate from base to display currency. Read once per read of a part.

A configuration value for view S is the ``core_config_data.value`` of the first row that
exists among ``('stores', S)``, ``('websites', S's website)``, ``('default', 0)``; the
default scope is the last alone. A view's base currency skips the stores scope.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from ometria_sync.sources.magento2.values import text

BASE_URL = "web/secure/base_url"
BASE_CURRENCY = "currency/options/base"
DISPLAY_CURRENCY = "currency/options/default"
URL_SUFFIX = "catalog/seo/product_url_suffix"
PATHS = (BASE_URL, BASE_CURRENCY, DISPLAY_CURRENCY, URL_SUFFIX)
#: the suffix when no row sets it
DEFAULT_SUFFIX = ".html"
_MISSING = object()


class View(msgspec.Struct, frozen=True):
    """A ``store`` row with ``store_id > 0``."""

    id: int
    website_id: int
    is_active: bool


class Scope(msgspec.Struct, frozen=True):
    """What a view (or the default scope, ``view`` None) resolves to."""

    base_url: str | None
    base_currency: str | None
    display_currency: str | None
    suffix: str
    #: from base to display currency: 1 when they agree or either is unknown; None when the
    #: rate is not in ``directory_currency_rate`` (prices then left out)
    rate: Decimal | None


class Stores:
    """The views, the configuration rows of :data:`PATHS` and the currency rates."""

    def __init__(self, views: list[View], config: dict[tuple[str, int, str], Any],
                 rates: dict[tuple[str, str], Decimal]) -> None:
        self.views = {v.id: v for v in views}
        self._config = config
        self._rates = rates
        self.default = self._resolve(None)
        self._scopes = {v.id: self._resolve(v) for v in views}

    def scope(self, view_id: int) -> Scope:
        return self._scopes[view_id]

    def _value(self, path: str, view: View | None, *, stores: bool = True) -> Any:
        """The value of the first row that exists (``_MISSING`` when none does)."""
        scopes = [("default", 0)]
        if view is not None:
            scopes.insert(0, ("websites", view.website_id))
            if stores:
                scopes.insert(0, ("stores", view.id))
        for scope, scope_id in scopes:
            found = self._config.get((scope, scope_id, path), _MISSING)
            if found is not _MISSING:
                return found
        return _MISSING

    def _resolve(self, view: View | None) -> Scope:
        url = self._value(BASE_URL, view)
        base_url = None if url is _MISSING else text(url)
        if base_url is not None and not base_url.endswith("/"):
            base_url += "/"
        found = self._value(BASE_CURRENCY, view, stores=False)
        base = None if found is _MISSING else text(found)
        found = self._value(DISPLAY_CURRENCY, view)
        display = base if found is _MISSING else text(found)
        found = self._value(URL_SUFFIX, view)
        suffix = DEFAULT_SUFFIX if found is _MISSING else (text(found) or "")
        rate: Decimal | None = Decimal(1)
        if base is not None and display is not None and display != base:
            rate = self._rates.get((base, display))
        return Scope(base_url, base, display, suffix, rate)


async def load_stores(select: Any, table: Any, *, configuration: bool) -> Stores:
    """The views (and with ``configuration`` the configuration rows and rates), by
    ``select(sql, params)`` (rows as tuples) and ``table(name)`` (prefixed, quoted)."""
    views = [View(int(s), int(w), int(a or 0) == 1) for s, w, a in await select(
        f"SELECT store_id, website_id, is_active FROM {table('store')} WHERE store_id > 0 "
        "ORDER BY store_id")]
    if not configuration:
        return Stores(views, {}, {})
    config = {(str(scope), int(scope_id), str(path)): value
              for scope, scope_id, path, value in await select(
                  f"SELECT scope, scope_id, path, value FROM {table('core_config_data')} "
                  f"WHERE path IN ({', '.join(['%s'] * len(PATHS))})", list(PATHS))}
    rates = {(str(a), str(b)): Decimal(r) for a, b, r in await select(
        f"SELECT currency_from, currency_to, rate FROM {table('directory_currency_rate')}")
        if r is not None}
    return Stores(views, config, rates)
