"""A faster-than-real-time clock for the simulated appliance (``[simulation] speed``).

Everything the appliance times — the control loop, the safety rules, sessions, the relay test,
the simulated mat — reads this clock, so the whole plant runs ``speed`` times faster and stays
consistent with itself. Only for simulation: the loop watchdog thread still checks the real
``time.monotonic()``, and against a clock that runs ahead it cannot see a stalled loop; a real
mat always runs at speed 1 (the configuration refuses anything else in hardware mode).
"""

import time
from datetime import datetime, timedelta, timezone


class ScaledClock:
    """``monotonic()`` and ``wall()`` advance ``speed`` seconds per real second; ``sleep(s)``
    blocks for ``s / speed`` real seconds."""

    def __init__(self, speed: float, real_monotonic=time.monotonic, real_sleep=time.sleep):
        if speed < 1.0:
            raise ValueError("speed must be at least 1")
        self.speed = float(speed)
        self._real = real_monotonic
        self._real_sleep = real_sleep
        self._t0 = real_monotonic()
        self._wall0 = datetime.now(timezone.utc)

    def monotonic(self) -> float:
        return self._t0 + (self._real() - self._t0) * self.speed

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._real_sleep(seconds / self.speed)

    def wall(self) -> datetime:
        return self._wall0 + timedelta(seconds=(self._real() - self._t0) * self.speed)
