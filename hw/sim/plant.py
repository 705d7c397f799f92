"""A two-node thermal model of the mat, the plant that closes the loop in simulation.

::

    element  C_e dT_e/dt = P - G_es (T_e - T_s)
    surface  C_s dT_s/dt = G_es (T_e - T_s) - G_sa (T_s - T_amb) - [patient] G_p (T_s - T_p)
    sensor   tau dT_r/dt = T_s - T_r             (the RTD lags the surface it is bonded to)

``P`` is the power actually delivered: heater_w x SSR duty x relay closed. The SSR's 1 s
time-proportioning is averaged: the slowest electrical period is far shorter than the thermal time
constants (element 50 s, surface ~800 s). The surface node is what the skin feels; the model
reports it so scenarios can check the true temperature, not only what the sensor says.

Faults change the physics, not the software: ``heater_open`` (no power reaches the mat),
``ssr_stuck_on`` (full power whatever the SSR is told, until the series relay opens),
``sensor_detached`` (the RTD relaxes towards the room with a 60 s time constant).
"""

import math
from dataclasses import dataclass, fields

PLANT_FAULTS = ("heater_open", "ssr_stuck_on", "sensor_detached")
DETACHED_TAU_S = 60.0
MAX_STEP_S = 0.5


@dataclass
class MatParams:
    """Physical parameters of a mat and its room; the defaults are the reference mat."""

    ambient_c: float = 22.0                  # room
    heater_w: float = 80.0                   # element power at 100 % duty
    element_j_per_k: float = 300.0           # heat capacity of the element layer
    surface_j_per_k: float = 1200.0          # heat capacity of the top layer the patient lies on
    element_to_surface_w_per_k: float = 6.0
    surface_to_ambient_w_per_k: float = 1.5
    patient_w_per_k: float = 4.0             # surface-to-body conductance while a patient lies on it
    patient_c: float = 34.0                  # body-side temperature
    sensor_tau_s: float = 8.0                # RTD lag behind the surface
    sensor_noise_c: float = 0.05             # Gaussian, 1 sigma, before the ADC quantises; 0 = a quiet chip

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


class MatModel:
    """The mat, integrated up to whatever time it is asked about.

    The electrical inputs (:meth:`set_ssr`, :meth:`set_relay`) are piecewise constant: the model
    integrates up to the moment of each change before applying it, so power and energy are exact
    to the time of the pin change.
    """

    def __init__(self, params: MatParams, *, start_s: float = 0.0, relay_fitted: bool = True):
        self.p = params
        self.t_s = start_s
        self.element_c = self.surface_c = self.sensor_c = params.ambient_c
        self.ssr_duty = 0.0
        self.relay_closed = not relay_fitted
        self.patient_on = False
        self.faults: set[str] = set()
        self.energy_j = 0.0
        self.max_surface_c = self.surface_c
        #: When a power fault first made the delivered power differ from what the SSR and the
        #: relay ask for (an open heater while heat is asked for, a welded SSR while less than
        #: full power is): before that, nothing can see it.
        self.fault_effect_at_s: float | None = None
        self.power_log: list[tuple[float, float]] = [(start_s, 0.0)]  # (t_s, W) at each change

    # -- inputs ------------------------------------------------------------------------------
    def set_ssr(self, t_s: float, duty: float) -> None:
        self.advance_to(t_s)
        self.ssr_duty = duty
        self._log_power()

    def set_relay(self, t_s: float, closed: bool) -> None:
        self.advance_to(t_s)
        self.relay_closed = closed
        self._log_power()

    def set_patient(self, t_s: float, on: bool) -> None:
        self.advance_to(t_s)
        self.patient_on = on

    def inject(self, t_s: float, fault: str) -> None:
        if fault not in PLANT_FAULTS:
            raise ValueError(f"unknown plant fault {fault!r}")
        self.advance_to(t_s)
        self.faults.add(fault)
        self._log_power()

    def clear_faults(self, t_s: float) -> None:
        self.advance_to(t_s)
        self.faults.clear()
        self._log_power()

    # -- outputs -----------------------------------------------------------------------------
    @property
    def power_w(self) -> float:
        """Power delivered to the element right now."""
        if not self.relay_closed or "heater_open" in self.faults:
            return 0.0
        duty = 1.0 if "ssr_stuck_on" in self.faults else self.ssr_duty
        return self.p.heater_w * duty

    def _log_power(self) -> None:
        watts = self.power_w
        asked = self.p.heater_w * self.ssr_duty if self.relay_closed else 0.0
        if self.fault_effect_at_s is None and watts != asked:
            self.fault_effect_at_s = self.t_s
        if watts != self.power_log[-1][1]:
            self.power_log.append((self.t_s, watts))

    def sensor_at(self, t_s: float) -> float:
        self.advance_to(t_s)
        return self.sensor_c

    # -- integration -------------------------------------------------------------------------
    def advance_to(self, t_s: float) -> None:
        while self.t_s < t_s:
            dt = min(MAX_STEP_S, t_s - self.t_s)
            self._step(dt)
            self.t_s += dt

    def _step(self, dt: float) -> None:
        p = self.p
        power = self.power_w
        to_surface = p.element_to_surface_w_per_k * (self.element_c - self.surface_c)
        losses = p.surface_to_ambient_w_per_k * (self.surface_c - p.ambient_c)
        if self.patient_on:
            losses += p.patient_w_per_k * (self.surface_c - p.patient_c)
        self.element_c += (power - to_surface) * dt / p.element_j_per_k
        self.surface_c += (to_surface - losses) * dt / p.surface_j_per_k
        if "sensor_detached" in self.faults:
            target, tau = p.ambient_c, DETACHED_TAU_S
        else:
            target, tau = self.surface_c, p.sensor_tau_s
        self.sensor_c = target + (self.sensor_c - target) * math.exp(-dt / tau)
        self.energy_j += power * dt
        self.max_surface_c = max(self.max_surface_c, self.surface_c)
