"""The control report's measures (pure functions over a trace) and its CLI contract."""

import json
import math

from appliance import control_report as cr
from appliance.config import from_dict
from appliance.sim import main as sim_main

STEP_S = 0.25
PLANT = {"heater_w": 80.0, "surface_to_ambient_w_per_k": 1.5, "ambient_c": 20.0,
         "patient_w_per_k": 4.0, "patient_c": 34.0}


def _trace(until_s, reading, surface=None, patient=lambda t: False, state=lambda t: "running",
           sp=40.0, start_s=0.0):
    rows = []
    t = start_s
    while t <= until_s + 1e-9:
        c = reading(t)
        rows.append((t, c, surface(t) if surface else c, sp, 0.5, True, state(t), patient(t)))
        t = round(t + STEP_S, 6)
    return rows


def _warmup(t):
    return min(40.0, 30.0 + t / 20.0)          # in the band (39.5) at 190 s


def test_time_to_band_and_overshoot_of_a_session_nobody_leaves():
    reading = lambda t: _warmup(t) + (0.25 if 300 <= t < 320 else 0.0)
    figures = cr.measure(_trace(1200, reading), PLANT, 40.0)
    assert 190 <= figures["time_to_band_s"] <= 192
    assert math.isclose(figures["overshoot_c"], 0.25, abs_tol=1e-6)
    assert figures["getup_excess_c"] is None and figures["patient_on_excess_c"] is None


def test_overshoot_is_not_judged_when_somebody_gets_up():
    patient = lambda t: 400 <= t < 800
    figures = cr.measure(_trace(1200, _warmup, patient=patient), PLANT, 40.0)
    assert figures["overshoot_c"] is None


def test_surface_under_and_after_a_patient_against_the_setpoint():
    patient = lambda t: 400 <= t < 800
    surface = lambda t: 40.4 if 500 <= t < 510 else (40.7 if 900 <= t < 905 else (
        41.5 if 1450 <= t < 1460 else _warmup(t)))
    figures = cr.measure(_trace(1500, _warmup, surface, patient), PLANT, 40.0)
    assert math.isclose(figures["patient_on_excess_c"], 0.4, abs_tol=1e-6)
    # 600 s after the get-up at 800 s: the 41.5 °C at 1450 s is outside that window
    assert math.isclose(figures["getup_excess_c"], 0.7, abs_tol=1e-6)
    assert math.isclose(figures["getup_surface_c"], 40.7, abs_tol=1e-6)


def _prewarm_trace(patient, surface_before_c: float) -> list[tuple]:
    """A pre-warm at 36 °C from -300 s (the trace has no setpoint then), then the session's
    warm-up to 40 °C; the surface ``surface_before_c`` before Start."""
    surface = lambda t: surface_before_c if t < 0 else _warmup(t)
    trace = _trace(400, lambda t: 36.0 if t < 0 else _warmup(t), surface, patient,
                   state=lambda t: "idle" if t < 0 else "running", start_s=-300)
    return [(t, c, s, None if t < 0 else sp, *rest) for t, c, s, sp, *rest in trace]


def test_a_pre_warm_is_judged_against_its_own_setpoint():
    figures = cr.measure(_prewarm_trace(lambda t: t < -100, 36.5), PLANT, 40.0,
                         prewarm_setpoint_c=36.0)
    assert math.isclose(figures["patient_on_excess_c"], 0.5, abs_tol=1e-6)


def test_a_get_up_in_a_pre_warm_is_judged_against_each_moments_setpoint():
    # she gets up at -200 s of a pre-warm at 36 °C; the session then heats to 40 °C: no excess.
    # Sweep 1 #99 was reported 4.04 °C over "the setpoint" for exactly this.
    figures = cr.measure(_prewarm_trace(lambda t: t < -200, 36.3), PLANT, 40.0,
                         prewarm_setpoint_c=36.0)
    assert math.isclose(figures["getup_excess_c"], 0.3, abs_tol=1e-6)
    assert math.isclose(figures["getup_surface_c"], 40.0, abs_tol=1e-6)


def test_lie_down_recovery_and_steady_rms():
    dip = lambda t: 40.0 - (0.8 if 1000 <= t < 1040 else 0.0) + (0.1 if int(t // 10) % 2 else -0.1)
    reading = lambda t: _warmup(t) if t < 200 else dip(t)
    patient = lambda t: t >= 1000
    figures = cr.measure(_trace(2400, reading, patient=patient), PLANT, 40.0)
    assert len(figures["liedown_recovery_s"]) == 1
    assert 38 <= figures["liedown_recovery_s"][0] <= 42   # out of the band for 40 s (2 s mean)
    # steady state: a ±0.1 °C square wave of 20 s, the 5 min after the band and after the lie-down left out
    assert 0.0 < figures["rms_c"] <= 0.1


def test_a_pause_is_not_steady_state_error():
    # held at 40.0 ± 0.1 but for a 10-min pause at 800 s, in which the mat cools to 32 °C
    paused = lambda t: 800 <= t < 1400
    reading = lambda t: _warmup(t) if t < 200 else (32.0 if paused(t) else
                                                     40.0 + (0.1 if int(t // 10) % 2 else -0.1))
    figures = cr.measure(_trace(2400, reading, state=lambda t: "paused" if paused(t) else "running"),
                         PLANT, 40.0)
    assert 0.0 < figures["rms_c"] <= 0.1


def test_a_mat_that_cannot_hold_its_setpoint_is_no_control_error():
    weak = {**PLANT, "heater_w": 40.0}
    assert cr.can_hold(PLANT, 40.0, patient_on=True)          # 80 W ≥ 1.2 × (30 + 24) W
    assert not cr.can_hold(weak, 40.0, patient_on=True)
    assert cr.can_hold(weak, 40.0, patient_on=False)          # 40 W ≥ 1.2 × 30 W
    reading = lambda t: _warmup(t) if t < 1000 else 38.5
    figures = cr.measure(_trace(2400, reading, patient=lambda t: t >= 1000), weak, 40.0)
    assert figures["liedown_recovery_s"] == []
    assert figures["rms_c"] is not None and figures["rms_c"] < 0.01   # only the patient-free part


def test_a_session_without_heat_has_no_figures():
    assert cr.measure(_trace(100, lambda t: 25.0, sp=None), PLANT, None) is None


def test_blinded_safety_is_a_valid_configuration_at_the_ends_of_the_ranges():
    blind = cr.blind_safety()
    config = from_dict({"safety": blind}, "test")
    assert config.safety.missing_heat_w == blind["missing_heat_w"] >= 500
    assert config.safety.fall_margin_c == blind["fall_margin_c"]
    assert "trip_c" not in blind and "max_setpoint_c" not in blind   # the real limits stay


def test_ratios_are_against_full_power_on_cold_starts_only():
    def row(index, controller, band_s, prewarm=0):
        return {"index": index, "controller": controller, "faults": [],
                "scenario": {"run": {"prewarm_s": prewarm}},
                "figures": {"time_to_band_s": band_s}}
    rows = cr.with_ratios([row(0, "full_power", 100.0), row(0, "ours", 110.0),
                           row(1, "full_power", 200.0), row(1, "ours", None),
                           row(2, "full_power", 50.0, 600), row(2, "ours", 0.0, 600)])
    ours = {r["index"]: r["figures"]["time_ratio"] for r in rows if r["controller"] == "ours"}
    assert ours == {0: 1.1, 1: math.inf, 2: None}
    summary = cr.summarise(rows, "ours")["time_ratio"]
    assert summary["never"] == 1 and summary["max"] is None and summary["n"] == 2


def test_control_report_cli_prints_the_table_the_json_and_the_worst(tmp_path, capsys):
    code = sim_main(["--sweep", "2", "--seed", "3", "--control-report", "--jobs", "1",
                     "--out", str(tmp_path)])
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])
    assert any(line.startswith("| *target* |") for line in out)
    assert list(summary["controllers"]) == list(cr.CONTROLLERS)
    for name in cr.CONTROLLERS:
        assert summary["controllers"][name]["runs"] == 2
        assert summary["controllers"][name]["faults"]["codes"].keys().isdisjoint(
            {"heating_while_off", "no_heating_effect", "sensor_detached"})
    assert code == (0 if summary["ours_meets_targets"] else 1)
    assert 1 <= len(summary["worst_ours"]) <= 5
    for worst in summary["worst_ours"]:
        path = tmp_path / f"control-3-{worst['index']}.toml"
        assert path.exists() and worst["file"] == str(path)
        assert sim_main([str(path), "--json"]) == 0      # re-runs alone


def test_control_report_refuses_faults_and_a_single_controller(capsys):
    import pytest
    for extra in (["--faults"], ["--controller", "ours"]):
        with pytest.raises(SystemExit):
            sim_main(["--sweep", "1", "--control-report", *extra])
    with pytest.raises(SystemExit):
        sim_main(["--control-report"])
