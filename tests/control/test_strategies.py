"""Unit tests of the control strategies: each fed readings by hand, time passed in."""

import pytest

from appliance.config import ControlConfig
from appliance.control import (CONTROLLERS, BangBang, FullPower, KilnPid, ModelBased, Pid,
                               make_controller)
from hw.sim.plant import MatParams


def test_pid_proportional_and_integral():
    pid = Pid(kp_per_c=0.1, ki_per_c_s=0.01)
    assert pid.update(0.0, 39.0, 40.0) == pytest.approx(0.1)         # kp * 1 K, no integral yet
    assert pid.update(1.0, 39.0, 40.0) == pytest.approx(0.1 + 0.01)  # + ki * 1 K * 1 s


def test_pid_anti_windup_clamps_the_integral_while_saturated():
    pid = Pid(kp_per_c=0.5, ki_per_c_s=0.05)
    for i in range(1000):                      # far below the setpoint for 1000 s: output saturated
        assert pid.update(float(i), 20.0, 40.0) == 1.0
    assert pid.integral <= 1.0 - 0.5 * 20.0 + 1e-9 or pid.integral <= 0.0
    # Crossing the setpoint, the output must drop at once, not after unwinding 1000 s of error.
    assert pid.update(1000.0, 40.5, 40.0) < 0.05


def test_pid_derivative_on_measurement_does_not_kick_on_setpoint_change():
    pid = Pid(kp_per_c=0.0, ki_per_c_s=0.0, kd_s=50.0, derivative_smooth_s=0.25)
    pid.update(0.0, 30.0, 30.0)
    assert pid.update(0.25, 30.0, 40.0) == 0.0            # setpoint jump: no derivative kick
    assert pid.update(0.5, 30.5, 40.0) == 0.0             # rising 2 K/s: derivative pushes down (clamped)
    pid2 = Pid(kp_per_c=1.0, ki_per_c_s=0.0, kd_s=0.1, derivative_smooth_s=0.25)
    pid2.update(0.0, 39.0, 40.0)
    assert pid2.update(0.25, 39.5, 40.0) == pytest.approx(0.5 - 0.1 * 2.0)


def test_bang_bang_hysteresis():
    bb = BangBang(hysteresis_c=1.0)
    assert bb.update(0, 30.0, 40.0) == 1.0
    assert bb.update(1, 40.0, 40.0) == 0.0                # off at the setpoint
    assert bb.update(2, 39.5, 40.0) == 0.0                # inside the band: stays off
    assert bb.update(3, 39.0, 40.0) == 0.0                # at setpoint − 1: still off
    assert bb.update(4, 38.99, 40.0) == 1.0               # below: on
    assert bb.update(5, 39.5, 40.0) == 1.0                # inside the band: stays on


def test_kiln_pid_bands_and_window():
    kiln = KilnPid(band_c=5.0, window_s=2.0)
    assert kiln.update(0.0, 30.0, 40.0) == 1.0            # more than 5 K below: full on
    assert kiln.update(1.0, 50.0, 40.0) == 1.0            # held for the 2 s window
    assert kiln.update(2.0, 50.0, 40.0) == 0.0            # new window, more than 5 K above: off
    inside = kiln.update(4.0, 39.0, 40.0)                 # inside ±5 K: the PID
    assert 0.0 < inside < 1.0
    assert kiln.update(5.0, 30.0, 40.0) == inside         # the window holds the PID's output


def test_full_power_latches_off_at_the_setpoint():
    fp = FullPower()
    assert fp.update(0, 30.0, 40.0) == 1.0
    assert fp.update(1, 40.0, 40.0) == 0.0
    assert fp.update(2, 35.0, 40.0) == 0.0                # latched: never on again
    fp.reset()
    assert fp.update(3, 35.0, 40.0) == 1.0


def test_make_controller_knows_every_name():
    for name in CONTROLLERS:
        ctl = make_controller(name, ControlConfig(), MatParams())
        ctl.reset()
        assert 0.0 <= ctl.update(0.0, 22.0, 40.0) <= 1.0
    with pytest.raises(ValueError):
        make_controller("nope", ControlConfig(), MatParams())


def test_model_based_boosts_from_cold_and_is_off_when_far_above():
    ctl = ModelBased(MatParams(), ControlConfig())
    assert ctl.update(0.0, 22.0, 40.0) == 1.0
    hot = ModelBased(MatParams(), ControlConfig())
    hot.update(0.0, 39.0, 38.0)
    hot.boosting = False
    assert hot.update(0.25, 39.0, 38.0) == 0.0


def test_model_based_holding_power_at_equilibrium():
    """At rest at the setpoint the predictive hold asks for the room's losses, 1.5 W/K × 18 K."""
    m = MatParams()
    ctl = ModelBased(m, ControlConfig(), adapt=False)
    ctl.update(0.0, 40.0, 40.0)
    ctl.boosting = False
    b = ctl.balance
    b.te_c = 40.0 + 27.0 / m.element_to_surface_w_per_k
    assert ctl.power_for(40.0) == pytest.approx(27.0, abs=0.5)


@pytest.mark.parametrize("start_c", [30.0, 36.0, 39.0])
def test_model_based_on_a_warm_mat_reaches_the_setpoint_without_overshoot(start_c):
    """A second session on a mat still warm from the first: the warm-up fit's at-rest assumption
    does not hold, so an implausible fit must be rejected rather than used."""
    import random

    from hw.sim.plant import MatModel
    p = MatParams()
    mat = MatModel(p, relay_fitted=False)
    mat.surface_c = mat.sensor_c = start_c
    mat.element_c = start_c + 1.0
    ctl = ModelBased(p, ControlConfig())
    rng = random.Random(1)
    t, reached, peak = 0.0, None, 0.0
    while t < 1200.0:
        mat.set_ssr(t, ctl.update(t, mat.sensor_at(t) + rng.gauss(0.0, 0.05), 40.0))
        if reached is None and mat.sensor_c >= 39.5:
            reached = t
        peak = max(peak, mat.surface_c)
        t += 0.25
    assert reached is not None and reached < 500.0
    assert peak <= 40.3


def _warm_up(ctl: ModelBased, mat, start_s: float, until_s: float, setpoint_c: float) -> float:
    """Run ``ctl`` on ``mat`` from ``start_s``; returns the peak true surface."""
    import random
    rng = random.Random(3)
    t, peak = start_s, 0.0
    while t < until_s:
        mat.set_ssr(t, ctl.update(t, mat.sensor_at(t) + rng.gauss(0.0, 0.03), setpoint_c))
        peak = max(peak, mat.surface_c)
        t += 0.25
    return peak


def _idle(ctl: ModelBased, mat, start_s: float, until_s: float) -> None:
    t = start_s
    while t < until_s:
        ctl.observe_idle(t, mat.sensor_at(t))
        t += 0.25


def test_a_warm_up_from_rest_is_learned_and_kept():
    from hw.sim.plant import MatModel
    p = MatParams(heater_w=120.0, sensor_tau_s=20.0)
    mat = MatModel(p, relay_fitted=False)
    ctl = ModelBased(MatParams(), ControlConfig())
    _idle(ctl, mat, 0.0, 60.0)
    _warm_up(ctl, mat, 60.0, 600.0, 40.0)
    assert ctl.learned is not None and ctl.trusted
    ctl.reset()
    assert ctl.trusted and ctl.m is ctl.learned.model


def test_a_warm_up_from_a_drifting_mat_is_used_but_not_kept():
    """A body lay on the mat for five minutes before Start and stays: the reading drifts up
    0.012 °C/s, which the bank takes for the heater's doing. Its fit steers this warm-up (the
    mat is adopted) but is not kept for the next episode."""
    from hw.sim.plant import MatModel
    p = MatParams(heater_w=120.0, sensor_tau_s=20.0)
    mat = MatModel(p, relay_fitted=False)
    mat.set_patient(0.0, True)
    ctl = ModelBased(MatParams(), ControlConfig())
    _idle(ctl, mat, 0.0, 300.0)
    assert ctl._idle.slope() > 0.004
    _warm_up(ctl, mat, 300.0, 900.0, 40.0)
    assert ctl.m is not ctl.nominal, "the warm-up's fit steers this episode"
    assert ctl.learned is None and not ctl.trusted
    ctl.reset()
    assert ctl.m is ctl.nominal


def test_an_untrusted_model_guards_the_slowest_sensor_lag():
    """Rising 0.05 °C/s: a 40 s sensor reads the surface 2 °C late, an 8 s one 0.4 °C; the hold
    and the end of the boost allow for the 1.6 °C difference unless a warm-up from rest taught
    the lag."""
    ctl = ModelBased(MatParams(), ControlConfig(), adapt=False)
    for i in range(80):
        ctl.update(i * 0.25, 30.0 + 0.05 * i * 0.25, 40.0)
    assert ctl.unknown_lag_lead_c(ctl.m) == pytest.approx(32 * 0.05, rel=0.05)
    ctl.trusted = True
    assert ctl.unknown_lag_lead_c(ctl.m) == 0.0
