"""The host's clock: IANA time zones, and instants read in the host's local time.

Election-day rules judge *instants* in the host's local time (a visit belongs to election
day if it happens on that day where the polling station is), so one instant written with
any UTC offset gets one verdict. A time written without an offset is host-local.

The zones a country uses come from the IANA time-zone database as the ``tzdata`` package
ships it (``zone.tab``: one row per zone, with the ISO 3166 code of the country it serves);
instants are converted with the standard library's ``zoneinfo``.
"""

from __future__ import annotations

import functools
import importlib.resources
from datetime import date, datetime, time, tzinfo
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel

UTC_ZONE = "UTC"

T = TypeVar("T")


@functools.cache
def _zone_table() -> dict[str, tuple[str, ...]]:
    """Country code -> its zones, in ``zone.tab``'s order (most populous region first)."""
    text = importlib.resources.files("tzdata").joinpath("zoneinfo/zone.tab").read_text("utf-8")
    zones: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        country, _coordinates, zone, *_ = line.split("\t")
        zones.setdefault(country, []).append(zone)
    return {country: tuple(names) for country, names in zones.items()}


def country_zones(country: str) -> tuple[str, ...]:
    """The IANA zones of ``country`` (ISO 3166-1 alpha-2) per the time-zone database's
    ``zone.tab``; empty for a code it does not list."""
    return _zone_table().get(country.upper(), ())


def implied_zone(country: str) -> str | None:
    """The zone of a country that has exactly one; ``None`` where it has several (or the
    database lists none)."""
    zones = country_zones(country)
    return zones[0] if len(zones) == 1 else None


def check_zone(name: str) -> str:
    """``name`` if it is an IANA time zone the database holds (``Asia/Almaty``, ``UTC``);
    else ``ValueError`` saying so."""
    try:
        if "/" not in name and name != UTC_ZONE:
            raise ZoneInfoNotFoundError(name)
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{name!r} is not an IANA time zone (write it as Area/City, e.g. Asia/Almaty)"
        ) from None
    return name


def zone(name: str | None) -> tzinfo:
    """The ``tzinfo`` of an IANA zone name (``None`` reads as UTC)."""
    return ZoneInfo(name or UTC_ZONE)


def aware(moment: datetime, zone_name: str | None) -> datetime:
    """``moment`` as an instant: as written if it has its UTC offset, else read as a local
    time in ``zone_name`` (the earlier of two readings when clocks go back)."""
    if moment.tzinfo is not None and moment.utcoffset() is not None:
        return moment
    return moment.replace(tzinfo=zone(zone_name))


def local(moment: datetime, zone_name: str | None) -> datetime:
    """``moment`` in the local time of ``zone_name``, with its UTC offset: the same
    instant as written with another offset. A time without an offset is local already."""
    return aware(moment, zone_name).astimezone(zone(zone_name))


def sent_instant(day: date, zone_name: str | None, now: datetime) -> datetime:
    """The instant a thing dated ``day`` (host time) happened, as far as the record says:
    ``now`` if ``day`` is today in the host's zone (it is being recorded as it happens),
    else the start of that day there."""
    if local(now, zone_name).date() == day:
        return now
    return datetime.combine(day, time(0, 0), tzinfo=zone(zone_name))


def shown(moment: datetime | None, zone_name: str | None) -> str:
    """How a person reads an instant: ISO 8601 in host time, with its offset
    (``2021-01-10T07:00:00+06:00``); ``"-"`` for none."""
    if moment is None:
        return "-"
    return local(moment, zone_name).isoformat()


def localized(value: T, zone_name: str | None) -> T:
    """``value`` with every instant in it (in models, lists, tuples and dict values) read
    in ``zone_name``'s local time with its offset: the same instants, as a person there
    reads them. Times without an offset are left as written."""
    if isinstance(value, datetime):
        return local(value, zone_name) if value.tzinfo is not None else value  # type: ignore[return-value]
    if isinstance(value, BaseModel):
        changes = {
            name: localized(getattr(value, name), zone_name) for name in type(value).model_fields
        }
        changed = {k: v for k, v in changes.items() if v is not getattr(value, k)}
        return value.model_copy(update=changed) if changed else value
    if isinstance(value, list):
        items = [localized(item, zone_name) for item in value]
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value  # type: ignore[return-value]
    if isinstance(value, dict):
        entries = {k: localized(v, zone_name) for k, v in value.items()}
        return entries if any(entries[k] is not value[k] for k in value) else value  # type: ignore[return-value]
    return value
