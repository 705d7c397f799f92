"""Safety rules evaluated on every sample, before the control output is applied.

Pure logic: every method takes the time (``time.monotonic()`` seconds) as an argument and does no
I/O, so each rule can be tested by feeding it samples. :class:`SafetySupervisor` runs the rules,
latches what they find in :class:`FaultLatch`, and tells the core whether heat is allowed and
whether the series relay may stay closed. The heating-effect checks live in
:mod:`appliance.runaway`.

The hazard table (hazard -> rule -> key -> test) is in ``docs/safety.md``.
"""

import math
from dataclasses import dataclass, field

from appliance.alarms import CATALOGUE, FAULT_BIT_CODES
from appliance.config import SafetyConfig
from appliance.runaway import HeatingEffect
from hw.rtd import RTD_A, RTD_B, RtdSample
from hw.sim.plant import MatParams


@dataclass
class LatchedFault:
    code: str
    detected_at_s: float
    readings: dict
    needs: str
    present: bool = True

    @property
    def spec(self):
        return CATALOGUE[self.code]


SENSOR_CODES = frozenset(FAULT_BIT_CODES.values()) | {"spi_error", "sensor_range", "sensor_jump",
                                                    "sensor_stale", "sensor_frozen"}


class FaultLatch:
    """Faults stay until a person acknowledges them, and only once their condition is gone."""

    def __init__(self):
        self.active: dict[str, LatchedFault] = {}

    def latch(self, code: str, now_s: float, readings: dict, needs: str | None = None) -> LatchedFault | None:
        """Latch ``code``; returns the new fault, or ``None`` if it was already latched."""
        if code in self.active:
            self.active[code].present = True
            return None
        fault = LatchedFault(code, now_s, readings, needs or CATALOGUE[code].needs)
        self.active[code] = fault
        return fault

    def acknowledge(self, code: str | None, role: str) -> tuple[list[str], list[str], list[str]]:
        """Clear what ``role`` may clear. Returns (cleared, still present, needs service)."""
        cleared, present, service = [], [], []
        for fault in list(self.active.values()):
            if code is not None and fault.code != code:
                continue
            if fault.present:
                present.append(fault.code)
            elif fault.needs == "service" and role != "service":
                service.append(fault.code)
            else:
                cleared.append(fault.code)
                del self.active[fault.code]
        return cleared, present, service

    def blocks_heat(self) -> bool:
        return bool(self.active) and any(f.code != "interrupted" for f in self.active.values())



#: Which chip finding names the fault when a reading carries several: the fault-detection cycle's
#: diagnosis of the cause (REFIN-) before the symptom (a threshold), a stopped converter first.
_BIT_PRIORITY = (("CYCLE_TIMEOUT", "sensor_stale"), ("NO_RESPONSE", "spi_error"),
                 ("REFINLOW", "refin"), ("REFINHIGH", "refin"), ("HIGHTHRESH", "rtd_open"),
                 ("LOWTHRESH", "rtd_short"), ("OVUV", "ovuv"), ("RTDINLOW", "refin"))


def step_c(sample: RtdSample) -> float | None:
    """One ADC step (LSB) of this reading in °C, from its own resistance and code."""
    t, ohms, code = sample.temperature_c, sample.resistance_ohm, sample.code
    if t is None or not ohms or not code:
        return None
    ohm_per_step = ohms / code
    ohm_per_c = ohms * (RTD_A + 2 * RTD_B * t) / (1 + RTD_A * t + RTD_B * t * t)
    return ohm_per_step / ohm_per_c


class QuietSensorBound:
    """The *least* a working sensor's reading must have risen by now, from the heat put in since
    the reading last changed (Δ 0 then).

    A two-node mat (element, surface) and the RTD's lag, as in :mod:`hw.sim.plant`, but with the
    controller's ``[model]`` made deliberately slow and lossy — heat capacities ×2.5,
    element-to-surface coupling ×0.5, sensor lag ×2.5 (at least 20 s), room losses ×1.5 to a room
    7 °C colder, a patient's pull ×1.5 towards a body 2 °C cooler — so that any mat within that
    envelope moves at least as much. Heat only ever counts as far as it exceeds those losses: at a
    steady setpoint the bound stays at or below zero, whatever the duty.
    """

    CAPACITY_FACTOR = 2.5
    COUPLING_FACTOR = 0.5
    SENSOR_LAG_FACTOR = 2.5
    MIN_SENSOR_LAG_S = 20.0
    LOSS_FACTOR = 1.5
    COLDER_ROOM_C = 7.0
    COOLER_BODY_C = 2.0
    MAX_STEP_S = 0.5

    def __init__(self, model: MatParams):
        self.element_j_per_k = model.element_j_per_k * self.CAPACITY_FACTOR
        self.surface_j_per_k = model.surface_j_per_k * self.CAPACITY_FACTOR
        self.coupling_w_per_k = model.element_to_surface_w_per_k * self.COUPLING_FACTOR
        self.sensor_tau_s = max(self.MIN_SENSOR_LAG_S, model.sensor_tau_s * self.SENSOR_LAG_FACTOR)
        self.room_w_per_k = model.surface_to_ambient_w_per_k * self.LOSS_FACTOR
        self.room_c = model.ambient_c - self.COLDER_ROOM_C
        self.patient_w_per_k = model.patient_w_per_k * self.LOSS_FACTOR
        self.patient_c = model.patient_c - self.COOLER_BODY_C
        self.restart(0.0)

    def restart(self, reading_c: float) -> None:
        self.start_c = reading_c
        self._element = self._surface = self.rise_c = 0.0

    def advance(self, dt_s: float, power_w: float) -> None:
        while dt_s > 1e-9:
            dt = min(self.MAX_STEP_S, dt_s)
            dt_s -= dt
            surface_c = self.start_c + self._surface
            losses = self.room_w_per_k * (surface_c - self.room_c)
            losses += self.patient_w_per_k * max(0.0, surface_c - self.patient_c)
            flow = self.coupling_w_per_k * (self._element - self._surface)
            self._element += (power_w - flow) * dt / self.element_j_per_k
            self._surface += (flow - losses) * dt / self.surface_j_per_k
            self.rise_c += (self._surface - self.rise_c) * (1 - math.exp(-dt / self.sensor_tau_s))


class SensorValidator:
    """Rule 3 and 4: turn raw samples into a trusted mat temperature, or a fault.

    A reading is *bad* if the MAX31865 reports a fault, the SPI transfer failed, the liveness
    probe found the converter stopped, it lies outside ``min_valid_c``..``max_valid_c``, or it
    jumps more than ``max_step_c`` from the last good one. A single bad reading is dropped (a
    noise spike must not end a session); ``bad_reads_to_trip`` in a row, or no good reading for
    ``stale_s``, trips.

    Frozen: a quiet converter repeats one code for many seconds at a steady mat, so an unchanged
    code alone proves nothing. ``sensor_frozen`` trips only when the code has not changed for
    ``frozen_s`` *and* the heat put in since it last changed should have moved even a slow mat's
    reading by ``frozen_steps`` ADC steps (:class:`QuietSensorBound`). A converter that stopped
    is the liveness probe's to catch (:class:`hw.rtd.RtdSensor`), steady mat or not.
    """

    def __init__(self, cfg: SafetyConfig, now_s: float, model: MatParams | None = None):
        self.cfg = cfg
        self.bad_in_row = 0
        self.last_bad_code: str | None = None
        self.last_good_c: float | None = None
        self.last_good_at_s = now_s
        self.bound = QuietSensorBound(model or MatParams())
        self._frozen_code: int | None = None
        self._frozen_since_s = now_s
        self._last_update_s = now_s

    def use_model(self, model: MatParams) -> None:
        self.bound = QuietSensorBound(model)
        self._frozen_code = None

    def classify(self, sample: RtdSample, now_s: float) -> str | None:
        """The fault code this reading would count towards, or ``None`` for a good reading."""
        cfg = self.cfg
        if sample.error in ("spi_error", "missing"):
            return "spi_error" if sample.error == "spi_error" else "sensor_missing"
        if sample.error in ("fault", "stale"):
            for bit, code in _BIT_PRIORITY:
                if bit in sample.fault_bits:
                    return code
            return "sensor_stale" if sample.error == "stale" else "refin"
        t = sample.temperature_c
        if t is None or not cfg.min_valid_c <= t <= cfg.max_valid_c:
            return "sensor_range"
        recent = now_s - self.last_good_at_s <= cfg.stale_s
        if self.last_good_c is not None and recent and abs(t - self.last_good_c) > cfg.max_step_c:
            return "sensor_jump"
        return None

    def update(self, sample: RtdSample, now_s: float, power_w: float) -> tuple[float | None, str | None]:
        """Returns (trusted temperature or ``None``, fault code to trip or ``None``).

        ``power_w``: the heater power delivered during the period that just ended.
        """
        cfg = self.cfg
        bad = self.classify(sample, now_s)
        dt_s, self._last_update_s = now_s - self._last_update_s, now_s
        trip = None
        if bad is None:
            self.bad_in_row = 0
            self.last_good_c = sample.temperature_c
            self.last_good_at_s = now_s
        else:
            self.bad_in_row += 1
            self.last_bad_code = bad
            if self.bad_in_row >= cfg.bad_reads_to_trip:
                trip = bad
        if trip is None and now_s - self.last_good_at_s >= cfg.stale_s:
            trip = self.last_bad_code or "sensor_stale"
        if bad is not None:
            self._frozen_code = None
        elif sample.code != self._frozen_code:
            self._frozen_code = sample.code
            self._frozen_since_s = now_s
            self.bound.restart(sample.temperature_c)
        else:
            self.bound.advance(dt_s, power_w)
            steps = step_c(sample)
            if trip is None and steps and now_s - self._frozen_since_s >= cfg.frozen_s and \
                    self.bound.rise_c >= cfg.frozen_steps * steps:
                trip = "sensor_frozen"
        return (sample.temperature_c if bad is None else None), trip

    def condition_present(self, code: str, sample: RtdSample, now_s: float) -> bool:
        """Whether a latched sensor fault is still there (the latest reading is not good)."""
        if code == "sensor_frozen":
            return sample.code is not None and sample.code == self._frozen_code
        return self.classify(sample, now_s) is not None


@dataclass
class Inputs:
    """What the supervisor sees of one control period."""

    now_s: float
    sample: RtdSample
    duty: float                  # SSR duty applied during the period that just ended
    relay_closed: bool
    setpoint_c: float | None     # the target while a session wants heat, else None
    ui_clients: int
    heater_w: float


@dataclass
class Verdict:
    mat_c: float | None
    new_faults: list[LatchedFault] = field(default_factory=list)
    heat_allowed: bool = True


class SafetySupervisor:
    """Runs every rule on every sample and owns the fault latch."""

    def __init__(self, cfg: SafetyConfig, model, now_s: float):
        self.cfg = cfg
        self.latch = FaultLatch()
        self.sensor = SensorValidator(cfg, now_s, model)
        self.effect = HeatingEffect(cfg, model)
        self._heating_since_s: float | None = None
        self._ui_missing_since_s: float | None = None
        self._overtemp_history_s: list[float] = []

    def trip(self, code: str, now_s: float, readings: dict) -> LatchedFault | None:
        needs = None
        if code == "over_temperature":
            window_s = self.cfg.overtemp_repeat_h * 3600
            recent = [t for t in self._overtemp_history_s if now_s - t <= window_s]
            self._overtemp_history_s = recent + [now_s]
            if recent:
                needs = "service"  # a repeat means something is wrong with the unit
        return self.latch.latch(code, now_s, readings, needs)

    def evaluate(self, x: Inputs) -> Verdict:
        cfg = self.cfg
        heat_wanted = x.setpoint_c is not None
        mat_c, sensor_trip = self.sensor.update(x.sample, x.now_s,
                                                x.duty * x.heater_w if x.relay_closed else 0.0)
        readings = {"mat_c": mat_c, "resistance_ohm": x.sample.resistance_ohm, "code": x.sample.code,
                    "fault_bits": list(x.sample.fault_bits), "duty": round(x.duty, 3),
                    "setpoint_c": x.setpoint_c}
        trips = []
        if sensor_trip:
            trips.append(sensor_trip)
            self.effect.reset()  # the heat balance must not carry a broken sensor's history
        if mat_c is not None and mat_c >= cfg.trip_c:
            trips.append("over_temperature")
        trips += self.effect.update(x.now_s, mat_c, x.duty if x.relay_closed else 0.0, x.heater_w,
                                    x.setpoint_c)
        # Rule 7: heating time in a row is capped, whatever the session says.
        if heat_wanted:
            if self._heating_since_s is None:
                self._heating_since_s = x.now_s
            if x.now_s - self._heating_since_s >= cfg.max_heating_min * 60:
                trips.append("heating_time_cap")
        else:
            self._heating_since_s = None
        # Rule 9: a heated session needs a screen that can show its alarms.
        if heat_wanted and x.ui_clients == 0:
            if self._ui_missing_since_s is None:
                self._ui_missing_since_s = x.now_s
            if x.now_s - self._ui_missing_since_s >= cfg.ui_lost_s:
                trips.append("ui_lost")
        else:
            self._ui_missing_since_s = None
        verdict = Verdict(mat_c)
        for code in trips:
            fault = self.trip(code, x.now_s, readings)
            if fault is not None:
                verdict.new_faults.append(fault)
        self._refresh_present(x, mat_c)
        verdict.heat_allowed = not self.latch.blocks_heat()
        return verdict

    def _refresh_present(self, x: Inputs, mat_c: float | None) -> None:
        for fault in self.latch.active.values():
            code = fault.code
            if code in ("sensor_missing", "output_missing"):
                fault.present = True  # only a restart with working hardware clears these
            elif code in SENSOR_CODES:
                fault.present = self.sensor.condition_present(code, x.sample, x.now_s)
            elif code == "over_temperature":
                fault.present = mat_c is None or mat_c >= self.cfg.trip_c - 1.0
            elif code == "ui_lost":
                fault.present = x.ui_clients == 0
            else:
                fault.present = False

    def use_model(self, model) -> None:
        """A calibrated model of the mat (``lumbarest tune``): the heat balance starts over."""
        self.effect = HeatingEffect(self.cfg, model)
        self.sensor.use_model(model)

    def session_started(self) -> None:
        """A new session starts its own heating-time count and heating-effect windows."""
        self._heating_since_s = None
        self.effect.reset()
