"""Clinic tests: the simulated stack on a virtual clock, as tests/core/conftest.py builds it."""

from datetime import datetime, timezone

import pytest

from appliance.config import from_dict
from appliance.core import Appliance
from appliance.wiring import build_simulated
from hw.clock import VirtualClock

PERIOD_S = 0.25


class Stack:
    def __init__(self, data: dict | None = None, history=None, start_wall: datetime | None = None):
        self.clock = VirtualClock(start_wall)
        self.config = from_dict({"mode": "simulation", **(data or {})})
        self.devices = build_simulated(self.config, self.clock, seed=1)
        self.rig = self.devices.rig
        self.core = Appliance(self.config, self.devices, self.clock, history=history)
        self.core.set_ui_clients(1)
        while not self.core.ready:
            self.tick()

    def tick(self, seconds: float = PERIOD_S, every=None) -> None:
        for _ in range(max(1, round(seconds / PERIOD_S))):
            self.core.tick()
            if every is not None:
                every(self)
            self.clock.advance_to(self.clock.monotonic() + PERIOD_S)

    @property
    def surface_c(self) -> float:
        """The simulated mat's true surface temperature now."""
        self.rig.mat.advance_to(self.clock.monotonic())
        return self.rig.mat.surface_c


@pytest.fixture
def stack():
    def build(data: dict | None = None, **kwargs) -> Stack:
        return Stack(data, **kwargs)
    return build


@pytest.fixture
def history(tmp_path):
    from appliance.history import History
    h = History(tmp_path / "history.sqlite3")
    yield h
    h.close()


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)
