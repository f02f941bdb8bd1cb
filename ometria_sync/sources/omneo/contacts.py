"""An Omneo profile and its aggregations as an Ometria contact (reference section 8.1).

The contact is a partial record merged into what Ometria holds (``@merge``): a field Omneo
does not have is left out, never sent as null, so it never deletes a value another source set.
Consent is sent only when Omneo's ``attributes.comms`` is present; ``@force_optin`` never.
"""

from __future__ import annotations

import re
from typing import Any

from ometria_sync.sources.omneo.normalise import iso
from ometria_sync.sources.omneo.profile import Aggregations, Comms, Profile
from ometria_sync.sources.omneo.properties import contact_values
from ometria_sync.sources.omneo.settings import OmneoProfilesSettings, OmneoSourceConfig

_GENDERS = {"male": "m", "m": "m", "female": "f", "f": "f", "other": "o", "o": "o"}
_E164 = re.compile(r"\+[1-9]\d{1,14}", re.ASCII)
_PHONE_SEPARATORS = re.compile(r"[\s().-]")
PLACEHOLDER_NAME = "unknown"


def customer_id(profile: Profile, settings: OmneoSourceConfig) -> str | None:
    """The id that links a contact to its orders: the profile id, its ``external_id``, or the
    identifier of its identity with ``identity_handle``. Orders use the same rule."""
    if settings.customer_id == "external_id":
        return profile.external_id
    if settings.customer_id == "identity":
        wanted = (settings.identity_handle or "").lower()
        for identity in profile.identities:
            if identity.handle and identity.handle.lower() == wanted and identity.identifier:
                return identity.identifier
        return None
    return profile.id


def to_contact(profile: Profile, aggregations: Aggregations | None,
               settings: OmneoProfilesSettings) -> dict[str, Any]:
    """The contact to push. Never raises: every value here was read and checked already."""
    contact: dict[str, Any] = {"@type": "contact", "@collection": settings.collection,
                               "@merge": True, "id": profile.id}
    acquired = profile.joined_at or profile.created_at
    fields = {
        "customer_id": customer_id(profile, settings),
        "email": profile.email,
        "prefix": profile.title,
        "firstname": _name(profile.first_name, settings),
        "lastname": _name(profile.last_name, settings),
        "gender": _GENDERS.get((profile.gender or "").lower()),
        "date_of_birth": profile.date_of_birth.isoformat() if profile.date_of_birth else None,
        "phone_number": phone(profile.mobile_phone_e164) or phone(profile.mobile_phone),
        "country_id": profile.country or _likely_country(aggregations),
        "timestamp_acquired": iso(acquired) if acquired else None,
    }
    contact.update((k, v) for k, v in fields.items() if v is not None)
    if profile.comms is not None:
        contact.update(consent(profile.comms, not_specified=settings.optin_not_specified))
        sms = sms_channel(profile.comms)
        if sms:
            contact["channels"] = {"sms": sms}
    properties = settings.properties.apply(contact_values(profile, aggregations))
    if properties:
        contact["properties"] = properties
    return contact


def _name(value: str | None, settings: OmneoProfilesSettings) -> str | None:
    if value and settings.drop_unknown_names and value.lower() == PLACEHOLDER_NAME:
        return None
    return value


def phone(value: str | None) -> str | None:
    """E.164 once spaces, dots, dashes and brackets are taken out; without the ``+`` and
    country code a number is ambiguous and left out."""
    if not value:
        return None
    compact = _PHONE_SEPARATORS.sub("", value)
    return compact if _E164.fullmatch(compact) else None


def _likely_country(aggregations: Aggregations | None) -> str | None:
    code = aggregations.likely_country_iso if aggregations else None
    return code.upper() if code and len(code) == 2 and code.isalpha() and code.isascii() else None


def consent(comms: Comms, *, not_specified: bool) -> dict[str, Any]:
    """Email marketing consent. Omneo keeps two flags: ``email_optout`` wins (a customer can be
    neither opted out nor opted in to promotions); the decision's time goes with it."""
    when = iso(comms.email_consent_updated_at) if comms.email_consent_updated_at else None
    if comms.email_optout:
        found: dict[str, Any] = {"marketing_optin": "EXPLICITLY_OPTEDOUT"}
        if when:
            found["timestamp_unsubscribed"] = when
        return found
    if comms.email_promo:
        found = {"marketing_optin": "EXPLICITLY_OPTEDIN"}
        if when:
            found["timestamp_subscribed"] = when
        return found
    known = comms.email_optout is not None or comms.email_promo is not None
    return {"marketing_optin": "NOT_SPECIFIED"} if known and not_specified else {}


def sms_channel(comms: Comms) -> dict[str, Any]:
    """``channels.sms``: marketing allowed when opted in to SMS promotions and not out."""
    if comms.sms_promo is None and comms.sms_optout is None:
        return {}
    sms: dict[str, Any] = {"allow_marketing": bool(comms.sms_promo) and not comms.sms_optout}
    if comms.sms_consent_updated_at:
        sms["dt_updated_marketing"] = iso(comms.sms_consent_updated_at)
    return sms
