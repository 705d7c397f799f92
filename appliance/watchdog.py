"""Rule 8, loop health: something outside the control loop turns the heater off when it stalls.

:class:`LoopWatchdog` is the pure part (time passed in). The appliance runs it on its own thread
(:func:`run_watchdog_thread`); the scenario runner calls :meth:`LoopWatchdog.check` in virtual
time. systemd's ``WatchdogSec=`` is the outer layer: a process whose loop stops notifying is
killed and restarted, and ``ExecStopPost=`` drives the pins off.
"""

import threading
import time
from typing import Callable


class LoopWatchdog:
    """Stalled when no :meth:`beat` came for one period plus ``stall_s``.

    :param period_s: the loop's sample period (its deadline).
    :param stall_s: how far past its deadline the loop may be (``loop_stall_s``).
    """

    check_period_s = 0.1

    def __init__(self, period_s: float, stall_s: float, now_s: float):
        self.limit_s = period_s + stall_s
        self.last_beat_s = now_s
        self.tripped_at_s: float | None = None

    def beat(self, now_s: float) -> None:
        self.last_beat_s = now_s

    def check(self, now_s: float) -> bool:
        """True exactly once per stall: the moment the caller must force the heater off."""
        if self.tripped_at_s is None and now_s - self.last_beat_s > self.limit_s:
            self.tripped_at_s = now_s
            return True
        return False

    def take_trip(self) -> float | None:
        """The time of a trip not yet handled by the loop (and forget it)."""
        at, self.tripped_at_s = self.tripped_at_s, None
        return at


def run_watchdog_thread(watchdog: LoopWatchdog, force_off: Callable[[], None],
                        stop: threading.Event) -> threading.Thread:
    """Check the watchdog every 100 ms on a daemon thread; call ``force_off`` on a stall."""

    def run():
        while not stop.wait(watchdog.check_period_s):
            if watchdog.check(time.monotonic()):
                force_off()

    thread = threading.Thread(target=run, name="loop-watchdog", daemon=True)
    thread.start()
    return thread
