"""Clocks: the real one, and a virtual one so a 45-minute session simulates in seconds.

Safety timing uses :meth:`monotonic` only. A clock also offers :meth:`sleep` so it can stand in for
the ``time`` module of a driver that sleeps (the MAX31865 driver waits for one-shot conversions).
"""

import time
from datetime import datetime, timedelta, timezone


class RealClock:
    """The system clocks: ``time.monotonic()`` for control and safety, the wall clock for records."""

    monotonic = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)

    @staticmethod
    def wall() -> datetime:
        return datetime.now(timezone.utc)


class VirtualClock:
    """A clock that only moves when told to.

    :param start_wall: the wall-clock time at virtual time zero.
    """

    def __init__(self, start_wall: datetime | None = None):
        self._now_s = 0.0
        self._start_wall = start_wall or datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc)

    def monotonic(self) -> float:
        return self._now_s

    def sleep(self, seconds: float) -> None:
        """Sleeping advances virtual time, as a blocking call would on the real clock."""
        if seconds > 0:
            self._now_s += seconds

    def advance_to(self, t_s: float) -> None:
        if t_s > self._now_s:
            self._now_s = t_s

    def wall(self) -> datetime:
        return self._start_wall + timedelta(seconds=self._now_s)
