"""Heating-effect checks: is the heat the software commands the heat the mat gets?

In the spirit of Klipper's ``verify_heater``, kept in its own small module. Four checks, each for
a single fault that the temperature limit alone would catch too late or never:

* **missing heat** (heater open, sensor off the mat): the heat balance
  (:class:`appliance.thermal.HeatBalance`) shows most of the commanded power not arriving while
  the controller drives the heater hard -> ``no_heating_effect``;
* **implausible fall** (sensor detached): the reading falls faster than a heated mat can cool
  -> ``sensor_detached``;
* **excess heat** (SSR welded on): the mat gains far more heat than the commanded power and the
  element's stored heat explain -> ``heating_while_off``;
* and the two plain windows of the safety rules, as a backstop that needs no model: duty above
  ``runaway_min_duty`` for ``runaway_window_s`` with no rise of ``runaway_min_rise_c`` below the
  setpoint (rule 5), and duty 0 for ``stuck_settle_s`` then a rise of ``stuck_rise_c`` within
  ``stuck_window_s`` (rule 6).

A deviation is measured against a slow baseline of the unexplained heat, so a mat that differs
from the nominal model, a cold room or a patient's steady load are not faults.
"""

from collections import deque

from appliance.config import SafetyConfig
from appliance.thermal import HeatBalance
from hw.sim.plant import MatParams

DUTY_AVG_S = 20.0
WARMING_C = 0.1
BALANCE_SETTLE_S = 30.0
# Rule 5 watches a mat that should be warming: more than this below the setpoint. A mat held a
# little under it (a weak heater at high, a patient's load) is being regulated, not failing.
RUNAWAY_BAND_C = 1.0  # the observer's start-up transient


class HeatingEffect:
    """All heating-effect checks. :meth:`update` returns the fault codes to trip this sample."""

    def __init__(self, cfg: SafetyConfig, model: MatParams):
        self.cfg = cfg
        self.model = model
        self.balance = HeatBalance(model)
        self.reset()

    def reset(self) -> None:
        self.balance.reset()
        self.baseline_w = 0.0
        self._duty_hist: deque = deque()
        self._duty_sum = 0.0
        self._excess_since: float | None = None
        self._missing_since: float | None = None
        self._fall_hist: deque = deque()
        self._ts_hist: deque = deque()
        self._rule5_start: tuple[float, float] | None = None   # (t, lowest reading since)
        self._off_since: float | None = None
        self._rule6_hist: deque = deque()
        self._t_last: float | None = None

    def _mean_duty(self, now_s: float, duty: float) -> float:
        hist = self._duty_hist
        hist.append((now_s, duty))
        self._duty_sum += duty
        while now_s - hist[0][0] > DUTY_AVG_S:
            self._duty_sum -= hist.popleft()[1]
        return self._duty_sum / len(hist)

    def update(self, now_s: float, mat_c: float | None, duty: float, heater_w: float,
               setpoint_c: float | None) -> list[str]:
        """``duty`` is what was applied during the period that just ended (0 if the relay was open)."""
        dt = 0.0 if self._t_last is None else now_s - self._t_last
        self._t_last = now_s
        self.balance.update(now_s, mat_c, duty * heater_w)
        if mat_c is None:
            return []  # a rejected sample; the sensor rules decide when that is a fault
        trips = []
        mean_duty = self._mean_duty(now_s, duty)
        trips += self._balance_checks(now_s, dt, duty, mean_duty, heater_w)
        trips += self._fall_check(now_s, mean_duty)
        trips += self._rule5(now_s, mat_c, duty, setpoint_c)
        trips += self._rule6(now_s, mat_c, duty)
        return trips

    def _balance_checks(self, now_s: float, dt: float, duty: float, mean_duty: float,
                        heater_w: float) -> list[str]:
        cfg = self.cfg
        unexplained = self.balance.unexplained_w
        if unexplained is None or self.balance.age_s < BALANCE_SETTLE_S:
            return []
        deviation = unexplained - self.baseline_w
        trips = []
        excess = deviation > cfg.excess_heat_w
        missing = (not self._warming(now_s)
                   and -deviation > cfg.missing_heat_w
                   and -deviation > cfg.missing_heat_ratio * self.balance.model_inflow_w
                   and mean_duty >= cfg.runaway_min_duty
                   and duty >= cfg.runaway_min_duty)  # heat commanded now, not only lately
        self._excess_since = (self._excess_since or now_s) if excess else None
        self._missing_since = (self._missing_since or now_s) if missing else None
        if self._excess_since is not None and now_s - self._excess_since >= cfg.balance_confirm_s:
            trips.append("heating_while_off")
        if self._missing_since is not None and now_s - self._missing_since >= cfg.balance_confirm_s:
            trips.append("no_heating_effect")
        # The baseline follows slow losses (a patient, a cold room) but not a fault developing.
        # It never goes positive: heat the model cannot place is stored heat of a mat heavier
        # than nominal, which comes back out as a deficit when the heater next drives hard.
        if abs(deviation) < cfg.missing_heat_w / 2:
            self.baseline_w = min(0.0, self.baseline_w + min(1.0, dt / cfg.balance_baseline_s) * deviation)
        return trips

    def _warming(self, now_s: float) -> bool:
        """Whether the surface estimate rose over the last ``DUTY_AVG_S``: a slow mat is still a
        working one, however far it lags the nominal model."""
        hist = self._ts_hist
        hist.append((now_s, self.balance.ts_c))
        while now_s - hist[0][0] > DUTY_AVG_S:
            hist.popleft()
        return hist[-1][1] - hist[0][1] > WARMING_C

    def _fall_check(self, now_s: float, mean_duty: float) -> list[str]:
        cfg = self.cfg
        hist = self._fall_hist
        hist.append((now_s, self.balance.y_f))
        while now_s - hist[0][0] > cfg.fall_window_s:
            hist.popleft()
        fall_c = hist[0][1] - hist[-1][1]
        if mean_duty > 0.1 and fall_c > cfg.max_fall_c_per_min * cfg.fall_window_s / 60:
            return ["sensor_detached"]
        return []

    def _rule5(self, now_s: float, mat_c: float, duty: float, setpoint_c: float | None) -> list[str]:
        cfg = self.cfg
        y = self.balance.y_f
        if setpoint_c is None or duty < cfg.runaway_min_duty or mat_c >= setpoint_c - RUNAWAY_BAND_C:
            self._rule5_start = None
            return []
        if self._rule5_start is None:
            self._rule5_start = (now_s, y)
            return []
        start_s, lowest = self._rule5_start
        if y - lowest >= cfg.runaway_min_rise_c:
            self._rule5_start = (now_s, y)
            return []
        self._rule5_start = (start_s, min(lowest, y))
        return ["no_heating_effect"] if now_s - start_s >= cfg.runaway_window_s else []

    def _rule6(self, now_s: float, mat_c: float, duty: float) -> list[str]:
        cfg = self.cfg
        if duty > 0:
            self._off_since = None
            self._rule6_hist.clear()
            return []
        if self._off_since is None:
            self._off_since = now_s
        if now_s - self._off_since < cfg.stuck_settle_s:
            return []
        hist = self._rule6_hist
        hist.append((now_s, self.balance.y_f))
        while now_s - hist[0][0] > cfg.stuck_window_s:
            hist.popleft()
        lowest = min(v for _, v in hist)
        return ["heating_while_off"] if hist[-1][1] - lowest > cfg.stuck_rise_c else []
