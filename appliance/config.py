"""The appliance configuration: ``/etc/lumbarest/appliance.toml``, validated at start.

Every key carries its unit in its name. A bad file stops the appliance before it touches the
heater, with an error that names the file, the key, the bad value and what is allowed. Without a
config file the appliance runs in simulation, so it runs on any PC.

Sections and keys are documented in ``docs/configuration.md``.
"""

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from hw.sim.plant import MatParams


class ConfigError(ValueError):
    """A configuration value that is not allowed. ``str()`` is a complete sentence."""


def _num(lo: float, hi: float, *, integer: bool = False, optional: bool = False) -> dict:
    return {"range": (lo, hi), "integer": integer, "optional": optional}


@dataclass(frozen=True)
class SafetyConfig:
    """Limits enforced in the appliance process on every sample (docs/safety.md)."""

    trip_c: float = field(default=42.0, metadata=_num(30.0, 45.0))
    max_setpoint_c: float = field(default=40.0, metadata=_num(30.0, 41.0))
    min_valid_c: float = field(default=5.0, metadata=_num(-20.0, 20.0))
    max_valid_c: float = field(default=60.0, metadata=_num(40.0, 100.0))
    max_step_c: float = field(default=2.0, metadata=_num(0.5, 10.0))
    bad_reads_to_trip: int = field(default=3, metadata=_num(1, 10, integer=True))
    stale_s: float = field(default=2.0, metadata=_num(0.5, 10.0))
    frozen_s: float = field(default=10.0, metadata=_num(3.0, 120.0))
    frozen_steps: float = field(default=5.0, metadata=_num(2.0, 50.0))
    # The declared operating envelope (docs/safety.md): the heating-effect checks trip only on
    # what no mat and no patient inside it can explain. Scales are relative to [model].
    envelope_scale_min: float = field(default=0.6, metadata=_num(0.1, 1.0))
    envelope_scale_max: float = field(default=1.4, metadata=_num(1.0, 5.0))
    envelope_room_min_c: float = field(default=15.0, metadata=_num(0.0, 30.0))
    envelope_room_max_c: float = field(default=32.0, metadata=_num(15.0, 36.0))
    envelope_patient_min_c: float = field(default=32.0, metadata=_num(25.0, 37.0))
    envelope_patient_max_c: float = field(default=36.0, metadata=_num(30.0, 38.0))
    envelope_patient_max_w_per_k: float = field(default=6.0, metadata=_num(0.0, 30.0))
    fall_window_s: float = field(default=10.0, metadata=_num(2.0, 60.0))
    fall_margin_c: float = field(default=0.3, metadata=_num(0.0, 5.0))
    stuck_window_s: float = field(default=30.0, metadata=_num(5.0, 300.0))
    stuck_settle_s: float = field(default=180.0, metadata=_num(30.0, 900.0))
    stuck_min_rise_c: float = field(default=0.15, metadata=_num(0.03, 5.0))
    stuck_off_duty: float = field(default=0.02, metadata=_num(0.0, 0.5))
    stuck_margin_c: float = field(default=1.0, metadata=_num(0.3, 5.0))
    stuck_floor_c: float = field(default=39.0, metadata=_num(36.0, 42.0))
    stuck_accel_margin_c: float = field(default=0.4, metadata=_num(0.1, 5.0))
    stuck_slowing_ratio: float = field(default=0.8, metadata=_num(0.0, 1.0))
    missing_heat_w: float = field(default=30.0, metadata=_num(10.0, 500.0))
    missing_heat_ratio: float = field(default=0.6, metadata=_num(0.3, 1.0))
    missing_min_duty: float = field(default=0.5, metadata=_num(0.2, 1.0))
    missing_confirm_s: float = field(default=12.0, metadata=_num(0.0, 300.0))
    missing_window_s: float = field(default=60.0, metadata=_num(5.0, 300.0))
    missing_warming_window_s: float = field(default=20.0, metadata=_num(5.0, 300.0))
    balance_confirm_s: float = field(default=5.0, metadata=_num(0.0, 60.0))
    balance_baseline_s: float = field(default=300.0, metadata=_num(30.0, 3600.0))
    reach_notice_s: float = field(default=300.0, metadata=_num(60.0, 3600.0))
    max_heating_min: float = field(default=60.0, metadata=_num(5.0, 240.0))
    loop_stall_s: float = field(default=0.5, metadata=_num(0.1, 5.0))
    ui_lost_s: float = field(default=30.0, metadata=_num(5.0, 600.0))
    selftest_observe_s: float = field(default=3.0, metadata=_num(0.0, 60.0))
    selftest_max_rise_c: float = field(default=0.5, metadata=_num(0.1, 5.0))
    overtemp_repeat_h: float = field(default=24.0, metadata=_num(0.0, 720.0))


@dataclass(frozen=True)
class SessionConfig:
    max_session_min: float = field(default=60.0, metadata=_num(5.0, 180.0))
    extend_step_min: float = field(default=5.0, metadata=_num(1.0, 30.0))
    max_pause_min: float = field(default=10.0, metadata=_num(1.0, 60.0))
    in_band_c: float = field(default=0.5, metadata=_num(0.1, 3.0))


@dataclass(frozen=True)
class ControlConfig:
    """The closed loop. ``strategy`` names a controller in :mod:`appliance.control`."""

    strategy: str = field(default="ours", metadata={"choices": ("ours", "pid", "bang_bang", "kiln_pid", "full_power")})
    sample_period_s: float = field(default=0.25, metadata=_num(0.05, 0.25))
    kp_per_c: float = field(default=0.25, metadata=_num(0.0, 10.0))
    ki_per_c_s: float = field(default=0.002, metadata=_num(0.0, 1.0))
    kd_s: float = field(default=0.0, metadata=_num(0.0, 1000.0))


@dataclass(frozen=True)
class HardwareConfig:
    """Pins are BCM numbers. GPIO 9-27 are pulled down at reset: heater pins come from there."""

    heater_pin: int = field(default=23, metadata=_num(2, 27, integer=True))
    heater_active_high: bool = True
    ssr_frequency_hz: float = field(default=1.0, metadata=_num(0.1, 10000.0))
    relay_pin: int | None = field(default=24, metadata=_num(2, 27, integer=True, optional=True))
    relay_active_high: bool = True
    heartbeat_pin: int | None = field(default=25, metadata=_num(2, 27, integer=True, optional=True))
    rtd_cs_pin: int = field(default=5, metadata=_num(2, 27, integer=True))
    rtd_nominal_ohm: float = field(default=100.0, metadata={"choices": (100.0, 1000.0)})
    rtd_ref_ohm: float = field(default=430.0, metadata=_num(100.0, 10000.0))
    rtd_wires: int = field(default=3, metadata={"choices": (2, 3, 4)})
    mains_hz: int = field(default=50, metadata={"choices": (50, 60)})
    # The MAX31865's fault-detection cycle proves the converter alive this often (a quiet chip
    # repeats one code at a steady mat); at most 10 s keeps a stopped converter caught in 15 s.
    rtd_probe_period_s: float = field(default=5.0, metadata=_num(1.0, 10.0))


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def valid_hhmm(value: Any) -> bool:
    """``"HH:MM"``, 24-hour local time."""
    if not isinstance(value, str) or len(value) != 5 or value[2] != ":":
        return False
    hh, mm = value[:2], value[3:]
    return hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60


def minutes_of_day(hhmm: str) -> int:
    return int(hhmm[:2]) * 60 + int(hhmm[3:])


def check_prewarm_plan(prewarm_time: str, lead_min: int, hold_min: int, max_heating_min: float,
                       source: str) -> None:
    """A pre-warm starts on the same day and never heats longer than ``max_heating_min``."""
    if lead_min + hold_min > max_heating_min:
        raise _fail(source, "prewarm_lead_min + prewarm_hold_min", lead_min + hold_min,
                    f"keep it at most safety.max_heating_min ({max_heating_min:g})")
    if valid_hhmm(prewarm_time) and minutes_of_day(prewarm_time) < lead_min:
        raise _fail(source, "prewarm_time", prewarm_time,
                    f"the pre-warm must start after midnight: at least {lead_min} minutes "
                    "after 00:00 (prewarm_lead_min)")


@dataclass(frozen=True)
class ClinicConfig:
    """Defaults of the clinic schedules (editable later as settings, docs/clinic.md).

    Times are local wall-clock ``"HH:MM"``. The pre-warm is off unless enabled: nothing heats by
    itself on a unit that was not set up for it.
    """

    prewarm_enabled: bool = False
    prewarm_time: str = field(default="07:30", metadata={"hhmm": True})
    prewarm_weekdays: tuple = ("mon", "tue", "wed", "thu", "fri")
    prewarm_lead_min: int = field(default=20, metadata=_num(5, 120, integer=True))
    prewarm_hold_min: int = field(default=30, metadata=_num(5, 30, integer=True))
    prewarm_grace_min: float = field(default=5.0, metadata=_num(0.5, 15.0))
    prewarm_needs_time_sync: bool = True
    selftest_time: str = field(default="02:30", metadata={"hhmm": True})
    prune_time: str = field(default="03:00", metadata={"hhmm": True})
    service_heater_hours: float = field(default=2000.0, metadata=_num(10.0, 100000.0))
    service_relay_cycles: int = field(default=100000, metadata=_num(100, 10000000, integer=True))
    selftest_max_age_days: float = field(default=2.0, metadata=_num(1.0, 60.0))

    def settings(self) -> dict:
        """The editable part, as settings values."""
        return {"prewarm_enabled": self.prewarm_enabled, "prewarm_time": self.prewarm_time,
                "prewarm_weekdays": list(self.prewarm_weekdays),
                "prewarm_lead_min": self.prewarm_lead_min,
                "prewarm_hold_min": self.prewarm_hold_min,
                "selftest_time": self.selftest_time, "prune_time": self.prune_time}


@dataclass(frozen=True)
class PanelConfig:
    """Physical controls on the clinic panel; every pin optional (BCM numbers), none by default.

    The stop button connects its pin to ground (internal pull-up) unless ``button_pull_up`` is
    false. See docs/clinic.md for the wiring.
    """

    stop_button_pin: int | None = field(default=None, metadata=_num(2, 27, integer=True, optional=True))
    button_pull_up: bool = True
    long_press_s: float = field(default=2.0, metadata=_num(0.5, 10.0))
    buzzer_pin: int | None = field(default=None, metadata=_num(2, 27, integer=True, optional=True))
    buzzer_active_high: bool = True
    buzzer_tone_hz: float | None = field(default=None, metadata=_num(150.0, 1000.0, optional=True))
    led_pin: int | None = field(default=None, metadata=_num(2, 27, integer=True, optional=True))
    led_active_high: bool = True

    def pins(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in ("stop_button_pin", "buzzer_pin", "led_pin")
                if getattr(self, name) is not None}


@dataclass(frozen=True)
class SimulationConfig:
    """Simulation only. ``speed`` runs the simulated mat, the control loop and every timer that
    many times faster than real time (the appliance's clock is scaled), so a 27-minute relay test
    takes seconds in an end-to-end test. Refused in hardware mode."""

    speed: float = field(default=1.0, metadata=_num(1.0, 1000.0))


@dataclass(frozen=True)
class Config:
    mode: str = "simulation"
    unit_name: str = "Lumbarest"
    levels: dict[str, float | None] = field(default_factory=lambda: {
        "off": None, "low": 36.0, "medium": 38.0, "high": 40.0})
    programs: dict[str, float] = field(default_factory=lambda: {
        "quick": 20.0, "standard": 30.0, "deep": 45.0, "traction": 30.0})
    safety: SafetyConfig = SafetyConfig()
    session: SessionConfig = SessionConfig()
    control: ControlConfig = ControlConfig()
    hardware: HardwareConfig = HardwareConfig()
    clinic: ClinicConfig = ClinicConfig()
    panel: PanelConfig = PanelConfig()
    simulation: SimulationConfig = SimulationConfig()
    model: MatParams = field(default_factory=MatParams)   # the controller's model of the mat
    plant: MatParams = field(default_factory=MatParams)   # simulation only: the simulated mat
    source: str = "built-in defaults"

    HEATLESS_PROGRAMS = ("traction",)


_SECTIONS = {"safety": SafetyConfig, "session": SessionConfig, "control": ControlConfig,
             "hardware": HardwareConfig, "clinic": ClinicConfig, "panel": PanelConfig,
             "simulation": SimulationConfig}


def _fail(source: str, key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"{source}: {key} = {value!r} is not allowed; {allowed}.")


def _check_value(source: str, key: str, value: Any, spec: dict, default: Any) -> Any:
    if spec.get("hhmm"):
        if not valid_hhmm(value):
            raise _fail(source, key, value, 'use a local time "HH:MM" (24 hours)')
        return value
    if "choices" in spec:
        if value not in spec["choices"] or isinstance(value, bool):
            choices = ", ".join(repr(c) for c in spec["choices"])
            raise _fail(source, key, value, f"use one of {choices}")
        return type(default)(value) if default is not None else value
    if "range" in spec:
        if value is None or (spec["optional"] and value is False):
            if spec["optional"]:
                return None
        lo, hi = spec["range"]
        wanted = "a whole number" if spec["integer"] else "a number"
        ok_type = isinstance(value, int) if spec["integer"] else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type or not lo <= value <= hi:
            extra = " (or false for none)" if spec["optional"] else ""
            raise _fail(source, key, value, f"use {wanted} from {lo:g} to {hi:g}{extra}")
        return value if spec["integer"] else float(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise _fail(source, key, value, "use true or false")
        return value
    if isinstance(default, str) and not isinstance(value, str):
        raise _fail(source, key, value, "use a quoted text")
    if isinstance(default, tuple):      # [clinic] prewarm_weekdays
        if not isinstance(value, list) or len(set(value)) != len(value) or \
                any(v not in WEEKDAYS for v in value):
            raise _fail(source, key, value, f"use a list of distinct days from {', '.join(WEEKDAYS)}")
        return tuple(value)
    return value


def _section(source: str, name: str, cls, table: Any, base):
    if not isinstance(table, dict):
        raise _fail(source, name, table, f"[{name}] must be a table")
    known = {f.name: f for f in fields(cls)}
    changes = {}
    for key, value in table.items():
        if key not in known:
            raise _fail(source, f"{name}.{key}", value,
                        f"known keys in [{name}] are {', '.join(sorted(known))}")
        spec = dict(known[key].metadata)
        if not spec and known[key].type in (float, "float"):
            spec = {"range": (-1e9, 1e9), "integer": False, "optional": False}
        changes[key] = _check_value(source, f"{name}.{key}", value, spec, getattr(base, key))
    return replace(base, **changes)


def mat_params(source: str, name: str, table: Any, base: MatParams) -> MatParams:
    if not isinstance(table, dict):
        raise _fail(source, name, table, f"[{name}] must be a table")
    changes = {}
    for key, value in table.items():
        if key not in MatParams.names():
            raise _fail(source, f"{name}.{key}", value,
                        f"known keys in [{name}] are {', '.join(MatParams.names())}")
        low = -30.0 if key.endswith("_c") else 0.0
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= 1e6:
            raise _fail(source, f"{name}.{key}", value, f"use a number from {low:g} to 1e6")
        changes[key] = float(value)
    result = replace(base, **changes)
    for key in ("element_j_per_k", "surface_j_per_k", "sensor_tau_s"):
        if getattr(result, key) <= 0:
            raise _fail(source, f"{name}.{key}", getattr(result, key), "use a number above 0")
    return result


def from_dict(data: dict, source: str = "configuration") -> Config:
    """Build and validate a :class:`Config` from parsed TOML."""
    config = Config(source=source)
    changes: dict[str, Any] = {}
    for key, value in data.items():
        if key == "mode":
            if value not in ("simulation", "hardware"):
                raise _fail(source, key, value, 'use "simulation" or "hardware"')
            changes[key] = value
        elif key == "unit_name":
            if not isinstance(value, str) or not 0 < len(value) <= 60:
                raise _fail(source, key, value, "use a text of 1 to 60 characters")
            changes[key] = value
        elif key in _SECTIONS:
            changes[key] = _section(source, key, _SECTIONS[key], value, getattr(config, key))
        elif key in ("model", "plant"):
            changes[key] = mat_params(source, key, value, getattr(config, key))
        elif key in ("levels", "programs"):
            if not isinstance(value, dict):
                raise _fail(source, key, value, f"[{key}] must be a table")
            changes[key] = {**getattr(config, key), **value}
        else:
            raise _fail(source, key, value, "known keys are mode, unit_name, [levels], [programs], "
                        "[safety], [session], [control], [hardware], [clinic], [panel], "
                        "[simulation], [model], [plant]")
    config = replace(config, **changes)
    if config.mode == "hardware" and config.simulation.speed != 1.0:
        raise _fail(source, "simulation.speed", config.simulation.speed,
                    "a real mat runs in real time: remove it in hardware mode")
    if config.safety.max_setpoint_c > config.safety.trip_c - 1.0:
        raise _fail(source, "safety.max_setpoint_c", config.safety.max_setpoint_c,
                    f"keep it at least 1 °C below safety.trip_c ({config.safety.trip_c:g})")
    validate_catalogue(config.levels, config.programs, config.safety.max_setpoint_c,
                       config.session.max_session_min, source)
    clinic = config.clinic
    if clinic.prewarm_enabled:
        check_prewarm_plan(clinic.prewarm_time, clinic.prewarm_lead_min, clinic.prewarm_hold_min,
                           config.safety.max_heating_min, f"{source}: [clinic]")
    _check_panel_pins(config, source)
    _check_active_high(config, source)
    return config


def _check_active_high(config: Config, source: str) -> None:
    """On the Pi the SSR and relay lines are active-high (hw/README.md). lgpio starts PWM with
    the line low and applies the first duty a period later, and every line is low at reset, on
    release and through its pull-down: with an active-low SSR or relay each of those moments
    would mean heat."""
    if config.mode != "hardware":
        return
    for key in ("heater_active_high", "relay_active_high"):
        if not getattr(config.hardware, key):
            raise _fail(source, f"hardware.{key}", False,
                        "the SSR and relay must be driven active-high on the Pi (a low line, as "
                        "at reset, on release and through the pull-down, must mean off; see "
                        "hw/README.md)")


def _check_panel_pins(config: Config, source: str) -> None:
    """Panel pins must not share a pin with each other, the heater outputs or the SPI bus."""
    hw = config.hardware
    taken = {hw.heater_pin: "hardware.heater_pin", hw.rtd_cs_pin: "hardware.rtd_cs_pin",
             **{p: "the SPI bus" for p in (7, 8, 9, 10, 11)}}
    for name in ("relay_pin", "heartbeat_pin"):
        if getattr(hw, name) is not None:
            taken[getattr(hw, name)] = f"hardware.{name}"
    for name, pin in config.panel.pins().items():
        if pin in taken:
            raise _fail(source, f"panel.{name}", pin, f"GPIO{pin} is used by {taken[pin]}")
        taken[pin] = f"panel.{name}"


def validate_catalogue(levels: dict, programs: dict, max_setpoint_c: float, max_session_min: float,
                       source: str) -> None:
    """Heat levels never above ``max_setpoint_c``; programs within ``max_session_min``."""
    if levels.get("off", None) is not None:
        raise _fail(source, "levels.off", levels["off"], "the off level has no temperature")
    for name, value in levels.items():
        if name == "off":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 30.0 <= value <= max_setpoint_c:
            raise _fail(source, f"levels.{name}", value,
                        f"use a temperature from 30 to {max_setpoint_c:g} °C (max_setpoint_c)")
    for name, value in programs.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value <= max_session_min:
            raise _fail(source, f"programs.{name}", value,
                        f"use minutes from 1 to {max_session_min:g} (max_session_min)")


def load(path: Path | None) -> Config:
    """Load ``path``; ``None`` means no file: the built-in defaults (simulation)."""
    if path is None:
        return Config()
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: the configuration file does not exist.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}.") from None
    return from_dict(data, str(path))
