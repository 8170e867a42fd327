"""``solar(event, lat, lon)``: due at sunrise, sunset, dawn, dusk or solar noon somewhere.

The sun's position comes from the sunrise equation with the usual low-precision terms (the
equation of center and the obliquity of the ecliptic, as in the almanac formulas): times
are good to about a minute away from the poles, which is what a schedule needs. Where an
event does not happen on a day (polar day or night) that day is skipped.
"""
from __future__ import annotations

import datetime as dt
import math
from typing import Dict, Optional, Tuple

from multiq.schedules import UTC, BaseSchedule

J2000 = 2451545.0  # Julian date of 2000-01-01 12:00 UTC
UNIX_EPOCH_JD = 2440587.5
OBLIQUITY = math.radians(23.4397)

# event -> (sun's altitude in degrees, rising (-1) / setting (+1) / transit (0))
EVENTS: Dict[str, Tuple[float, int]] = {
    "dawn_astronomical": (-18.0, -1),
    "dawn_nautical": (-12.0, -1),
    "dawn_civil": (-6.0, -1),
    "sunrise": (-0.833, -1),
    "solar_noon": (0.0, 0),
    "sunset": (-0.833, 1),
    "dusk_civil": (-6.0, 1),
    "dusk_nautical": (-12.0, 1),
    "dusk_astronomical": (-18.0, 1),
}


def event_time(event: str, lat: float, lon: float, day: int) -> Optional[float]:
    """Epoch seconds of ``event`` at (``lat``, ``lon``; east positive) on the solar day
    ``day`` (days since 2000-01-01), or None when it does not happen that day."""
    altitude, side = EVENTS[event]
    mean = day - lon / 360.0  # mean solar noon, in days since J2000
    anomaly = math.radians((357.5291 + 0.98560028 * mean) % 360)
    center = 1.9148 * math.sin(anomaly) + 0.02 * math.sin(2 * anomaly) \
        + 0.0003 * math.sin(3 * anomaly)
    ecliptic = math.radians((math.degrees(anomaly) + center + 180 + 102.9372) % 360)
    transit = J2000 + mean + 0.0053 * math.sin(anomaly) - 0.0069 * math.sin(2 * ecliptic)
    if side:
        declination = math.asin(math.sin(ecliptic) * math.sin(OBLIQUITY))
        phi = math.radians(lat)
        cos_hour = (math.sin(math.radians(altitude)) - math.sin(phi) * math.sin(declination)) \
            / (math.cos(phi) * math.cos(declination))
        if not -1.0 <= cos_hour <= 1.0:
            return None
        transit += side * math.degrees(math.acos(cos_hour)) / 360.0
    return (transit - UNIX_EPOCH_JD) * 86400.0


class solar(BaseSchedule):  # noqa: N801 - Celery's name
    """Due when ``event`` happens at latitude ``lat``, longitude ``lon`` (east positive)."""

    def __init__(self, event: str, lat: float, lon: float) -> None:
        if event not in EVENTS:
            raise ValueError(f"Unknown solar event {event!r}: one of {', '.join(EVENTS)}")
        if not (-90 <= float(lat) <= 90 and -180 <= float(lon) <= 180):
            raise ValueError(f"Bad coordinates ({lat}, {lon})")
        self.event, self.lat, self.lon = event, float(lat), float(lon)

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        instant = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
        first = int((instant / 86400.0) - (J2000 - UNIX_EPOCH_JD)) - 1
        for day in range(first, first + 400):  # a year and more: past any polar night
            at = event_time(self.event, self.lat, self.lon, day)
            if at is not None and at > instant:
                return dt.datetime.fromtimestamp(at, moment.tzinfo or UTC)
        from multiq.beat.timed import NEVER
        return NEVER

    def __repr__(self) -> str:
        return f"<solar: {self.event} at latitude {self.lat}, longitude {self.lon}>"
