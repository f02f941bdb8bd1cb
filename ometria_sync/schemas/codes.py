"""The real ISO code lists Ometria's records use: ISO 4217 currencies, ISO 3166-1 countries.

Taken from pycountry (which follows the ISO tables) once, at import, into frozensets.
"""

from __future__ import annotations

import pycountry

from ometria_sync.schemas.problems import show

CURRENCIES: frozenset[str] = frozenset(c.alpha_3 for c in pycountry.currencies)
COUNTRIES: frozenset[str] = frozenset(c.alpha_2 for c in pycountry.countries)

#: Codes people write that are not ISO, and the ISO code they mean.
_COUNTRY_SLIPS = {"UK": "GB", "EL": "GR"}


def currency_problem(code: str) -> str | None:
    """Why ``code`` is not an ISO 4217 currency code, or None when it is one."""
    if code in CURRENCIES:
        return None
    hint = f' (did you mean "{code.upper()}"?)' if code.upper() in CURRENCIES else ""
    return f'must be an ISO 4217 currency code such as "GBP", got {show(code)}{hint}'


def country_problem(code: str) -> str | None:
    """Why ``code`` is not an ISO 3166-1 alpha-2 country code, or None when it is one."""
    if code in COUNTRIES:
        return None
    upper = code.upper()
    meant = _COUNTRY_SLIPS.get(upper, upper if upper in COUNTRIES else None)
    hint = f' (did you mean "{meant}"?)' if meant else ""
    return f'must be an ISO 3166-1 alpha-2 country code such as "GB", got {show(code)}{hint}'
