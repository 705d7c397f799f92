"""Helpers for running the whole appliance stack in virtual time."""

import pytest

from appliance.config import from_dict
from appliance.core import Appliance
from appliance.sim import ScenarioRun, parse_scenario
from appliance.wiring import build_simulated
from hw.clock import VirtualClock

PERIOD_S = 0.25


def scenario(*, duration_s=800, program="standard", level="high", events=(), **sections) -> dict:
    return {"run": {"duration_s": duration_s, "program": program, "level": level, "seed": 1},
            "event": list(events), **sections}


def run(data: dict):
    """Run a scenario dict; returns (result, runner)."""
    runner = ScenarioRun(parse_scenario(data, "test"), "test")
    return runner.run(), runner


def fault_at(at_s: float, fault: str) -> dict:
    return {"at_s": at_s, "action": "fault", "fault": fault}


def trace_after(runner, t_s: float) -> list[tuple]:
    return [row for row in runner.trace if row[0] >= t_s]


@pytest.fixture
def stack():
    """A core on simulated hardware, ready, with a UI connected: (core, rig, clock, tick)."""

    def build(data: dict | None = None, before_core=None):
        clock = VirtualClock()
        config = from_dict({"mode": "simulation", **(data or {})})
        devices = build_simulated(config, clock, seed=1)
        if before_core:
            before_core(devices.rig)
        core = Appliance(config, devices, clock)
        core.set_ui_clients(1)

        def tick(seconds: float = PERIOD_S):
            for _ in range(max(1, round(seconds / PERIOD_S))):
                core.tick()
                clock.advance_to(clock.monotonic() + PERIOD_S)

        while not core.ready:
            tick()
        return core, devices.rig, clock, tick

    return build
