"""Autotune and model fit against the simulated mat (virtual time, a plain loop)."""

import random
from dataclasses import asdict, replace

import pytest

from appliance.config import ControlConfig
from appliance.control import ModelBased
from appliance.sim import ScenarioRun, parse_scenario
from appliance.tune import RelayAutotune, ResponseRecorder, fit_model
from hw.sim.plant import MatModel, MatParams

NOMINAL = MatParams()
HEAVY = replace(NOMINAL, element_j_per_k=600.0, surface_j_per_k=2400.0)


def run_relay(plant: MatParams, setpoint_c: float = 36.0, seed: int = 2):
    mat = MatModel(plant, relay_fitted=False)
    rng = random.Random(seed)
    tune = RelayAutotune(NOMINAL, setpoint_c)
    t, max_surface = 0.0, 0.0
    while not tune.done:
        reading = mat.sensor_at(t) + rng.gauss(0.0, plant.sensor_noise_c)
        mat.set_ssr(t, tune.update(t, reading))
        max_surface = max(max_surface, mat.surface_c)
        t += 0.25
    return tune, max_surface


@pytest.fixture(scope="module")
def tuned():
    return {"reference": run_relay(NOMINAL), "heavy": run_relay(HEAVY)}


@pytest.mark.parametrize("name,truth", [("reference", NOMINAL), ("heavy", HEAVY)])
def test_relay_fit_recovers_the_mat(tuned, name, truth):
    """Tolerances: capacities and heater power within 10 %; sensor lag within 60 % (the lag is the
    least visible parameter in a response dominated by the element and surface lags)."""
    tune, max_surface = tuned[name]
    res = tune.result()
    assert res["ok"] and not res["gave_up"]
    fit = res["fit"]
    assert fit["element_j_per_k"] == pytest.approx(truth.element_j_per_k, rel=0.10)
    assert fit["surface_j_per_k"] == pytest.approx(truth.surface_j_per_k, rel=0.10)
    assert fit["heater_w"] == pytest.approx(truth.heater_w, rel=0.10)
    assert fit["sensor_tau_s"] == pytest.approx(truth.sensor_tau_s, rel=0.60)
    assert res["ultimate_period_s"] > 0 and res["ultimate_gain_per_c"] > 0
    assert max_surface < 38.0                             # the test stays well below 40 °C
    cfg = tune.as_config()
    assert set(cfg["model"]) == {"heater_w", "element_j_per_k", "surface_j_per_k", "sensor_tau_s"}
    assert set(cfg["control"]) == {"kp_per_c", "ki_per_c_s", "kd_s"}


def test_relay_refuses_a_test_temperature_near_the_limit():
    with pytest.raises(ValueError):
        RelayAutotune(NOMINAL, 39.0, max_setpoint_c=40.0)


def test_heavy_mat_oscillates_slower(tuned):
    assert tuned["heavy"][0].result()["ultimate_period_s"] > 1.4 * tuned["reference"][0].result()["ultimate_period_s"]


def test_warm_up_fit_gets_heat_rate_per_capacity():
    """The session's online fit (a 240 s step response) pins down power per capacity."""
    mat = MatModel(HEAVY, relay_fitted=False)
    rng = random.Random(1)
    rec = ResponseRecorder()
    mat.set_ssr(0.0, 1.0)
    t = 0.0
    while t <= 240.0:
        rec.add(t, mat.sensor_at(t) + rng.gauss(0.0, 0.05), 80.0 if t > 0 else 0.0)
        t += 0.25
    fit = fit_model(rec.samples, rec.y0, NOMINAL, tie_capacities=True, fit_offset=False, fit_tau=False)
    truth = HEAVY.heater_w / (HEAVY.element_j_per_k + HEAVY.surface_j_per_k)
    got = fit["heater_w"] / (fit["element_j_per_k"] + fit["surface_j_per_k"])
    assert got == pytest.approx(truth, rel=0.10)


def _heavy_run(model: MatParams) -> dict:
    data = {"plant": {"element_j_per_k": 600.0, "surface_j_per_k": 2400.0},
            "model": {k: v for k, v in asdict(model).items() if k in
                      ("heater_w", "element_j_per_k", "surface_j_per_k", "sensor_tau_s")},
            "run": {"duration_s": 2100, "program": "standard", "level": "high", "seed": 1,
                    "controller": "ours"}}
    return ScenarioRun(parse_scenario(data, "heavy")).run()


def test_model_based_with_the_fitted_model_on_the_heavy_mat(tuned):
    fitted = replace(NOMINAL, **tuned["heavy"][0].as_config()["model"])
    nominal, tuned_run = _heavy_run(NOMINAL), _heavy_run(fitted)
    assert tuned_run["faults"] == [] and nominal["faults"] == []
    assert tuned_run["overshoot_c"] <= max(nominal["overshoot_c"], 0.1)
    assert tuned_run["time_to_band_s"] <= nominal["time_to_band_s"] * 1.02
    assert tuned_run["rms_error_c"] <= 0.15


class _TuneAsController:
    """The relay test in the core's controller slot: the full stack, every safety rule active."""

    def __init__(self, tune: RelayAutotune):
        self.tune = tune

    def reset(self):
        pass

    def update(self, now_s, mat_c, setpoint_c):
        return self.tune.update(now_s, mat_c)


def test_relay_test_trips_no_safety_rule_on_the_full_stack():
    data = {"run": {"duration_s": 1700, "program": "standard", "level": "medium", "seed": 3}}
    run = ScenarioRun(parse_scenario(data, "tune"))
    tune = RelayAutotune(run.config.model, 36.0)
    run.core.controller = _TuneAsController(tune)
    result = run.run()
    assert result["faults"] == []
    assert result["max_surface_c"] < 38.0
    assert tune.done and tune.result()["ok"]
    assert ModelBased(replace(NOMINAL, **tune.as_config()["model"]), ControlConfig()) is not None
