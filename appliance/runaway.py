"""Heating-effect checks: is the heat the software commands the heat the mat gets?

In the spirit of Klipper's ``verify_heater``, kept in its own small module — but a check here may
trip only when **no working mat inside the declared envelope, and no patient, can explain what the
sensor shows** (``docs/safety.md``, "Operating envelope"). The envelope is wide (element power
0.6–2 × ``[model]``, capacities and couplings 0.6–1.4 ×, room 15–32 °C, a patient of 2–6 W/K at
32–36 °C lying down or getting up at any moment), so each check rests on a physical fact that holds
for all of it, not on the nominal model:

* **Excess heat** (SSR welded on) -> ``heating_while_off``. Above 36.5 °C neither a patient (a
  body is at most 36 °C) nor the room (at most 32 °C) can warm the mat: with the heater commanded
  off, only heat already stored in the element can, and that heat runs out — the rise of a working
  mat *slows down* from the moment the power is cut (the two-node model proves it for every
  parameter set: with P = 0 and T_s rising, T_e − T_s falls and the losses grow). So: commanded off
  for ``stuck_settle_s``, above 36.5 °C and still rising -> something is still heating. Commanded
  off and rising more than ``stuck_margin_c`` above the setpoint at an undiminished pace: the
  controller seldom takes a working mat there, and then its rise fades. Commanded off, ``stuck_accel_margin_c`` above the setpoint and the rise
  speeding up: a working mat's only slows down.
* **Missing heat** (heater open) -> ``no_heating_effect``. The heat balance
  (:class:`appliance.thermal.HeatBalance`) with the commanded power shows most of it not arriving,
  while the controller commands full power and the mat is not warming. The threshold covers what a
  patient lying down takes, a weak element and a cold room (the envelope's worst).
* **Implausible fall** (sensor detached) -> ``sensor_detached``: the reading falls faster than
  any mat in the envelope can cool with the largest patient on it in the coldest room.
* A mat that cannot reach its level is **not a fault**: :class:`ReachWatch` raises a LOW notice.
"""

from collections import deque
from dataclasses import dataclass

from appliance.config import SafetyConfig
from appliance.thermal import HeatBalance
from hw.sim.plant import MatParams

DUTY_AVG_S = 20.0
WARMING_C = 0.1
BALANCE_SETTLE_S = 30.0


class Window:
    """Samples ``(t, value)`` over the last ``span_s`` seconds."""

    def __init__(self, span_s: float):
        self.span_s = span_s
        self.samples: deque = deque()

    def add(self, now_s: float, value: float) -> None:
        self.samples.append((now_s, value))
        while now_s - self.samples[0][0] > self.span_s:
            self.samples.popleft()

    def clear(self) -> None:
        self.samples.clear()

    @property
    def covered_s(self) -> float:
        return self.samples[-1][0] - self.samples[0][0] if self.samples else 0.0

    def at(self, t_s: float) -> float:
        """The value of the last sample at or before ``t_s`` (the oldest if none)."""
        best = self.samples[0][1]
        for when, value in self.samples:
            if when > t_s:
                break
            best = value
        return best

    def slope(self) -> float:
        """Least-squares slope per second (0 with fewer than two samples)."""
        n = len(self.samples)
        if n < 2:
            return 0.0
        t_mean = sum(t for t, _ in self.samples) / n
        v_mean = sum(v for _, v in self.samples) / n
        num = sum((t - t_mean) * (v - v_mean) for t, v in self.samples)
        den = sum((t - t_mean) ** 2 for t, _ in self.samples)
        return num / den if den else 0.0

    def mean(self) -> float:
        return sum(v for _, v in self.samples) / len(self.samples)

    def half_slopes(self) -> tuple[float, float] | None:
        """The slopes over the older and the newer half of the samples (None with under 16)."""
        samples = list(self.samples)
        half = len(samples) // 2
        if half < 8:
            return None
        first, second = Window(self.span_s), Window(self.span_s)
        for t, v in samples[:half]:
            first.add(t, v)
        for t, v in samples[half:]:
            second.add(t, v)
        return first.slope(), second.slope()


@dataclass(frozen=True)
class Envelope:
    """The declared operating envelope (``[safety] envelope_*``), around the ``[model]``."""

    room_max_c: float
    room_min_c: float
    patient_max_c: float
    patient_min_c: float
    patient_max_w_per_k: float
    scale_min: float
    scale_max: float

    @classmethod
    def from_config(cls, cfg: SafetyConfig) -> "Envelope":
        return cls(cfg.envelope_room_max_c, cfg.envelope_room_min_c, cfg.envelope_patient_max_c,
                   cfg.envelope_patient_min_c, cfg.envelope_patient_max_w_per_k,
                   cfg.envelope_scale_min, cfg.envelope_scale_max)

    @property
    def no_source_above_c(self) -> float:
        """Above this, neither the patient nor the room can warm the mat."""
        return max(self.patient_max_c, self.room_max_c) + 0.5

    def max_fall_c_per_s(self, model: MatParams, mat_c: float) -> float:
        """The fastest a working mat's surface can cool at ``mat_c``: heater off, the largest
        patient at the coolest body temperature, the coldest room, the lightest surface."""
        room_w = model.surface_to_ambient_w_per_k * self.scale_max * max(0.0, mat_c - self.room_min_c)
        patient_w = self.patient_max_w_per_k * max(0.0, mat_c - self.patient_min_c)
        return (room_w + patient_w) / (model.surface_j_per_k * self.scale_min)


class ExcessHeat:
    """``heating_while_off``: the mat keeps warming although the heater is commanded off.

    Three tests, all on the slope of the reading (least squares over ``stuck_window_s``, so the
    converter's noise averages out):

    * commanded off for ``stuck_settle_s`` — long enough for the heat stored in the element of
      any mat in the envelope to have arrived — and still rising above 36.5 °C, where neither a
      patient nor the room can warm it;
    * commanded off for one window, more than ``stuck_margin_c`` above the setpoint (and above
      ``stuck_floor_c``: a slow sensor over a strong element can take a ``low`` warm-up 1.5 °C
      past 36 °C, which harms nobody), rising and not slowing down (:meth:`_slowing`): this
      catches a welded SSR on a strong element early. A working mat gets there only by the heat
      its element held for a patient who got up, and that rise fades. Not
      for the autotune's relay test, which overshoots on purpose (the caller passes no setpoint);
    * commanded off for 1.5 windows, more than ``stuck_accel_margin_c`` above the setpoint and
      the rise speeding up (:meth:`_accelerating`): a welded SSR under a patient, creeping past
      the setpoint.
    """

    def __init__(self, cfg: SafetyConfig, envelope: Envelope):
        self.cfg = cfg
        self.envelope = envelope
        self.readings = Window(cfg.stuck_window_s)
        self.reset()

    def reset(self) -> None:
        self.readings.clear()
        self._off_since: float | None = None
        self._since: float | None = None

    def update(self, now_s: float, mat_c: float, duty: float, setpoint_c: float | None) -> bool:
        cfg = self.cfg
        if duty > cfg.stuck_off_duty:
            self._off_since = None
            self.readings.clear()
            self._since = None
            return False
        if self._off_since is None:
            self._off_since = now_s
        self.readings.add(now_s, mat_c)
        off_s = now_s - self._off_since
        excess = False
        if off_s >= cfg.stuck_window_s:
            rise_c = self.readings.slope() * cfg.stuck_window_s
            settled = off_s >= cfg.stuck_settle_s and mat_c > self.envelope.no_source_above_c
            over = (setpoint_c is not None and mat_c > max(setpoint_c + cfg.stuck_margin_c, cfg.stuck_floor_c)
                    and not self._slowing())
            excess = (settled or over) and rise_c >= cfg.stuck_min_rise_c
            # A reading still speeds up for about a sensor lag after the heater is cut (it
            # catches up with the surface), so the acceleration counts from 1.5 windows off.
            excess = excess or (setpoint_c is not None and off_s >= 1.5 * cfg.stuck_window_s
                                and mat_c > setpoint_c + cfg.stuck_accel_margin_c
                                and self._accelerating())
        self._since = (self._since or now_s) if excess else None
        return self._since is not None and now_s - self._since >= cfg.balance_confirm_s


    def _accelerating(self) -> bool:
        """The reading's rise over the second half of the window at least as steep as over the
        first half, and steep: with the heater off, a working mat's rise only slows down."""
        slopes = self.readings.half_slopes()
        if slopes is None:
            return False
        early, late = slopes
        return late * self.cfg.stuck_window_s >= self.cfg.stuck_min_rise_c * 2 and late >= early

    def _slowing(self) -> bool:
        """The rise over the second half of the window less than ``stuck_slowing_ratio`` of the
        first half's: the heat stored in the element running out, as after a patient gets up
        from a strong element. A welded SSR's rise keeps its pace (its element heats on)."""
        slopes = self.readings.half_slopes()
        if slopes is None:
            return False
        early, late = slopes
        return early > 0 and late < self.cfg.stuck_slowing_ratio * early


class MissingHeat:
    """``no_heating_effect``: the heater driven hard (``missing_min_duty``), the mat not warming,
    and far less heat arriving than commanded — more missing than a patient, a weak element and a
    cold room take — for ``missing_confirm_s`` without a break. A patient lying down on a mat
    unlike its model, or a warm-up from rest behind a slow sensor, looks like missing heat to the
    model for a few seconds (most of the sweep's false alarms lasted 7–12 s); a heater that stopped
    for good does not stop looking like it."""

    def __init__(self, cfg: SafetyConfig, model: MatParams, envelope: Envelope):
        self.cfg = cfg
        self.envelope = envelope
        self.balance = HeatBalance(model, pole_per_s=0.12)
        self.duty = Window(cfg.missing_window_s)
        self.surface = Window(cfg.missing_warming_window_s)
        self.reset()

    def reset(self) -> None:
        self.balance.reset()
        self.duty.clear()
        self.surface.clear()
        self.baseline_w = 0.0
        self._since: float | None = None

    def update(self, now_s: float, dt: float, mat_c: float | None, duty: float, heater_w: float) -> bool:
        cfg, balance = self.cfg, self.balance
        balance.update(now_s, mat_c, duty * heater_w)
        if mat_c is None or balance.unexplained_w is None:
            return False
        self.duty.add(now_s, duty)
        self.surface.add(now_s, balance.ts_c)
        if balance.age_s < BALANCE_SETTLE_S:
            return False
        deviation = balance.unexplained_w - self.baseline_w
        # Warming *now*: after a heater opens, its element's stored heat still warms the surface
        # for a minute or two, ever more slowly; a longer window remembers that rise as proof of
        # a working heater (and the baseline learns the deficit meanwhile).
        warming = self.surface.samples[-1][1] - self.surface.samples[0][1] > WARMING_C
        driven = (self.duty.covered_s >= cfg.missing_window_s - 0.5
                  and self.duty.mean() >= cfg.missing_min_duty and duty >= cfg.missing_min_duty)
        # A patient lying down takes up to G_p,max × (T − T_p,min) at once: more than that must
        # be missing before it can only be the heater.
        patient_w = self.envelope.patient_max_w_per_k * max(0.0, balance.ts_c - self.envelope.patient_min_c)
        # A weak element delivers only ``scale_min`` of the heat the model sends through it, on top
        # of what a patient takes. The baseline cannot be trusted to hold that shortfall already:
        # a warm room hides it (a 0.6 x element in a 31 °C room holds High like the model).
        weak_w = (1.0 - self.envelope.scale_min) * balance.model_inflow_w
        missing = (driven and not warming
                   and -deviation > max(cfg.missing_heat_w, patient_w + weak_w)
                   and -deviation > cfg.missing_heat_ratio * balance.model_inflow_w)
        self._since = (self._since or now_s) if missing else None
        # The baseline follows slow differences (a room, a mat unlike the model, a patient lying
        # still) but not a fault developing; it never goes positive. While the mat warms, the
        # heater demonstrably works, so whatever deficit the model sees is the model's error.
        if warming or abs(deviation) < cfg.missing_heat_w / 2:
            self.baseline_w = min(0.0, self.baseline_w + min(1.0, dt / cfg.balance_baseline_s) * deviation)
        return self._since is not None and now_s - self._since >= cfg.missing_confirm_s


class ImplausibleFall:
    """``sensor_detached``: the reading falls faster than any working mat can cool."""

    def __init__(self, cfg: SafetyConfig, envelope: Envelope, model: MatParams):
        self.cfg = cfg
        self.envelope = envelope
        self.model = model
        self.readings = Window(cfg.fall_window_s)

    def reset(self) -> None:
        self.readings.clear()

    def update(self, now_s: float, mat_c: float, mean_duty: float) -> bool:
        self.readings.add(now_s, mat_c)
        if self.readings.covered_s < self.cfg.fall_window_s - 0.5 or mean_duty <= 0.1:
            return False
        start_c = self.readings.samples[0][1]
        fall_c = start_c - mat_c
        limit_c = self.envelope.max_fall_c_per_s(self.model, start_c) * self.readings.covered_s
        return fall_c > limit_c + self.cfg.fall_margin_c


class ReachWatch:
    """A LOW notice, never a fault: full power for ``reach_notice_s`` and the mat is no longer
    getting closer to the setpoint. ``holding_c`` is what it holds."""

    def __init__(self, cfg: SafetyConfig):
        self.cfg = cfg
        self.readings = Window(cfg.reach_notice_s)
        self.holding_c: float | None = None

    def reset(self) -> None:
        self.readings.clear()
        self.holding_c = None

    def update(self, now_s: float, mat_c: float, duty: float, setpoint_c: float | None) -> None:
        if setpoint_c is None or duty < 0.99 or mat_c >= setpoint_c - 0.5:
            self.reset()
            return
        self.readings.add(now_s, mat_c)
        if self.readings.covered_s < self.cfg.reach_notice_s - 0.5:
            return
        half = self.readings.at(now_s - self.cfg.reach_notice_s / 2)
        if mat_c - half < 0.2:   # less than 0.2 °C gained in the last half: it is holding
            self.holding_c = round(self.readings.mean(), 1)
        elif self.holding_c is not None and mat_c - half > 0.5:
            self.holding_c = None


class HeatingEffect:
    """All heating-effect checks. :meth:`update` returns the fault codes to trip this sample;
    :attr:`reach` carries the "cannot reach the level" notice."""

    def __init__(self, cfg: SafetyConfig, model: MatParams):
        self.cfg = cfg
        self.model = model
        self.envelope = Envelope.from_config(cfg)
        self.excess = ExcessHeat(cfg, self.envelope)
        self.missing = MissingHeat(cfg, model, self.envelope)
        self.fall = ImplausibleFall(cfg, self.envelope, model)
        self.reach = ReachWatch(cfg)
        self.duty = Window(DUTY_AVG_S)
        self._t_last: float | None = None
        self._y_f: float | None = None

    @property
    def balance(self) -> HeatBalance:
        return self.missing.balance

    def reset(self) -> None:
        for check in (self.excess, self.missing, self.fall, self.reach):
            check.reset()
        self.duty.clear()
        self._t_last = None
        self._y_f = None

    def update(self, now_s: float, mat_c: float | None, duty: float, heater_w: float,
               setpoint_c: float | None, *, regulated: bool = True) -> list[str]:
        """``duty`` is what was applied during the period that just ended (0 if the relay was open).
        ``regulated``: the setpoint is held by the closed-loop controller (see :class:`ExcessHeat`)."""
        dt = 0.0 if self._t_last is None else now_s - self._t_last
        self._t_last = now_s
        trips = []
        if self.missing.update(now_s, dt, mat_c, duty, heater_w):
            trips.append("no_heating_effect")
        if mat_c is None:
            return trips  # a rejected sample; the sensor rules decide when that is a fault
        # A 2 s filter: the checks judge temperature, not the converter's noise.
        self._y_f = mat_c if self._y_f is None else self._y_f + min(1.0, dt / 2.0) * (mat_c - self._y_f)
        y = self._y_f
        self.duty.add(now_s, duty)
        if self.excess.update(now_s, mat_c, duty, setpoint_c if regulated else None):
            trips.append("heating_while_off")
        if self.fall.update(now_s, y, self.duty.mean()):
            trips.append("sensor_detached")
        self.reach.update(now_s, y, duty, setpoint_c)
        return trips
