"""bench/control_bounds.py: what the mat allows, whatever the controller."""

import math
from dataclasses import replace

import pytest

from bench import control_bounds as cb
from hw.sim.plant import MatParams

REFERENCE = MatParams()
#: A strong element behind a slow sensor in a warm room, at Low: the kind of mat where the time
#: target meets the overshoot target (sweep 1 #90's shape).
STRONG_SLOW = replace(REFERENCE, heater_w=132.0, element_j_per_k=408.0, surface_j_per_k=864.0,
                      element_to_surface_w_per_k=8.1, surface_to_ambient_w_per_k=1.3,
                      ambient_c=31.0, sensor_tau_s=36.0)


def test_the_get_up_floor_is_the_issues_own_figure():
    # issue 12: "with a controller that cuts power the instant the patient leaves, and the
    # surface held exactly at the setpoint: 0.26 °C on the reference mat, 0.50 °C with half the
    # element-to-surface coupling"
    assert math.isclose(cb.getup_peak_c(REFERENCE, 40.0) - 40.0, 0.26, abs_tol=0.01)
    half = replace(REFERENCE, element_to_surface_w_per_k=3.0)
    assert math.isclose(cb.getup_peak_c(half, 40.0) - 40.0, 0.50, abs_tol=0.01)


def test_the_get_up_reserve_is_what_brings_the_peak_to_the_limit():
    loose = replace(REFERENCE, element_to_surface_w_per_k=3.6, element_j_per_k=420.0,
                    ambient_c=15.0, patient_w_per_k=6.0, patient_c=32.0)
    assert cb.getup_peak_c(loose, 40.0) > 40.6
    reserve_c = cb.getup_reserve_c(loose, 40.0)
    assert reserve_c > 0.1
    assert math.isclose(cb.getup_peak_c(loose, 40.0 - reserve_c), 40.6, abs_tol=0.01)
    assert cb.getup_reserve_c(REFERENCE, 40.0) == 0.0


def test_the_one_switch_bound_is_the_latest_cut_that_keeps_the_overshoot():
    full_s, best_s = cb.fastest_band_s(STRONG_SLOW, [], 36.0, 0.2)
    assert full_s < best_s
    band_s, peak_c = cb.warmup(STRONG_SLOW, [], 36.0, float("inf"))
    assert band_s == full_s and peak_c > 37.0          # full power overshoots by far
    # find the cut again: its band time is the bound, its peak within 0.2 °C, 1 s more is not
    cuts = [c / 4 for c in range(int(full_s * 4))]
    fits = [c for c in cuts if cb.warmup(STRONG_SLOW, [], 36.0, c)[1] <= 36.2]
    assert cb.warmup(STRONG_SLOW, [], 36.0, fits[-1])[0] == pytest.approx(best_s, abs=0.5)
    assert cb.warmup(STRONG_SLOW, [], 36.0, fits[-1] + 1.0)[1] > 36.2


def test_no_controller_reaches_the_band_in_1_2_times_full_powers_time_on_some_mats():
    full_s, best_s = cb.fastest_band_s(STRONG_SLOW, [], 36.0, 0.3)
    assert best_s / full_s > 1.20
    full_s, best_s = cb.fastest_band_s(REFERENCE, [], 40.0, 0.2)
    assert best_s / full_s < 1.01


def test_a_patient_before_start_is_in_the_warm_up():
    alone, _ = cb.warmup(REFERENCE, [], 36.0, float("inf"))
    warmed, _ = cb.warmup(REFERENCE, [{"at_s": -200.0, "action": "patient_on"}], 36.0, float("inf"))
    assert warmed < alone - 10.0


def test_lie_down_recovery_at_full_power():
    assert cb.liedown_recovery_s(REFERENCE, 40.0) == 0.0
    # a weak element under a heavy patient: the reading leaves the band even at full power
    weak = replace(REFERENCE, heater_w=100.0, ambient_c=20.0, patient_w_per_k=6.0, patient_c=32.0)
    recovery_s = cb.liedown_recovery_s(weak, 40.0)
    assert 0.0 < recovery_s < math.inf
    mat = cb.at_hold(weak, 40.0, patient_on=False)
    mat.set_patient(0.0, True)
    mat.set_ssr(0.0, 1.0)
    assert mat.sensor_at(recovery_s - 1.0) < 39.5 <= mat.sensor_at(recovery_s)


def test_bounds_of_a_sweep_scenario():
    rows = [cb.bounds_of((i, 1)) for i in range(8)]
    heated = [r for r in rows if r is not None]
    assert heated and all(r["setpoint_c"] in (36.0, 38.0, 40.0) for r in heated)
    assert any("ratio_0.2" in r for r in heated)
    assert all(r["ratio_0.2"] >= r["ratio_0.3"] >= 1.0 for r in heated if "ratio_0.2" in r)
    summary = cb.summarise(heated)
    ratios = sorted(r["ratio_0.2"] for r in heated if "ratio_0.2" in r)
    assert summary["ratio_0.2"]["max"] == ratios[-1] and summary["ratio_0.2"]["n"] == len(ratios)
    assert summary["ratio_0.2"]["p50"] == ratios[(len(ratios) + 1) // 2 - 1]
    assert "| bound |" in cb.table(summary)
