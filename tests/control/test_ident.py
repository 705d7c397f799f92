"""appliance/ident.py: the warm-up's bank of mat shapes."""

from dataclasses import replace

import pytest

from appliance.ident import ModelBank
from hw.sim.plant import MatModel, MatParams


def _warm_up(plant: MatParams, until_s: float = 200.0) -> ModelBank:
    """The bank fed a noise-free warm-up at full power of ``plant`` from rest."""
    mat = MatModel(plant, relay_fitted=False)
    mat.set_ssr(0.0, 1.0)
    bank = ModelBank(MatParams())
    t = 0.0
    while t <= until_s:
        bank.update(t, mat.sensor_at(t), 1.0)
        t += 0.25
    return bank


@pytest.mark.parametrize("sensor_tau_s", [7.0, 15.0, 30.0])
def test_a_sensor_lag_of_the_grid_is_identified_with_its_element(sensor_tau_s):
    """The lags are no more than ~1.5 x apart (4, 7, 10, 15, 20, 30, 40 s): with 4, 10, 20 and
    40 s only, a 30 s sensor was fitted as 40 s (sweep 1 #72 had no shape that explained it)."""
    bank = _warm_up(replace(MatParams(), sensor_tau_s=sensor_tau_s, heater_w=120.0))
    best = bank.best.model
    assert bank.valid
    assert best.sensor_tau_s == sensor_tau_s
    assert best.heater_w == pytest.approx(120.0, rel=0.01)


def test_shapes_share_their_bodies():
    bank = ModelBank(MatParams())
    assert len(bank.bodies) == 12 and len(bank.shapes) == 84
    assert all(s.model.element_j_per_k == s.body.model.element_j_per_k for s in bank.shapes)
