"""The safety rules as pure logic: samples in, verdicts out, time passed in."""

import math

import pytest

from appliance.config import SafetyConfig
from appliance.runaway import Envelope, ExcessHeat
from appliance.safety import FaultLatch, Inputs, SafetySupervisor, SensorValidator, step_c
from hw.rtd import RtdSample, celsius_to_ohms, ohms_to_celsius
from hw.sim.plant import MatParams

CFG = SafetyConfig()


def good(t_c: float, code: int | None = None) -> RtdSample:
    return RtdSample(t_c, 115.0, code if code is not None else round(t_c * 1000))


def test_a_single_spike_is_dropped_and_three_bad_reads_trip():
    v = SensorValidator(CFG, 0.0)
    assert v.update(good(38.0), 0.0, True) == (38.0, None)
    assert v.update(good(68.0), 0.25, True) == (None, None)      # range
    assert v.update(good(38.1), 0.5, True) == (38.1, None)       # back: no fault
    assert v.update(good(41.0), 0.75, True) == (None, None)      # jump > max_step_c
    assert v.update(good(41.1), 1.0, True) == (None, None)
    assert v.update(good(41.2), 1.25, True) == (None, "sensor_jump")


@pytest.mark.parametrize("sample, code", [
    (RtdSample(None, 430.0, 0x7FFF, ("HIGHTHRESH",), "fault"), "rtd_open"),
    (RtdSample(None, 0.05, 4, ("LOWTHRESH",), "fault"), "rtd_short"),
    (RtdSample(None, 110.0, 9000, ("REFINLOW",), "fault"), "refin"),
    (RtdSample(None, 110.0, 9000, ("OVUV",), "fault"), "ovuv"),
    (RtdSample(None, None, None, (), "spi_error"), "spi_error"),
    (RtdSample(None, None, None, (), "missing"), "sensor_missing"),
    (good(2.0), "sensor_range"),
])
def test_bad_reading_kinds(sample, code):
    v = SensorValidator(CFG, 0.0)
    trips = [v.update(sample, i * 0.25, True)[1] for i in range(3)]
    assert trips == [None, None, code]


def test_no_good_read_for_stale_s_trips_even_without_three_in_a_row():
    cfg = SafetyConfig(bad_reads_to_trip=10, stale_s=2.0)
    v = SensorValidator(cfg, 0.0)
    v.update(good(38.0), 0.0, True)
    bad = RtdSample(None, None, None, (), "spi_error")
    trips = [v.update(bad, t / 4, True)[1] for t in range(1, 9)]
    assert trips[:7] == [None] * 7 and trips[7] == "spi_error"


def pt100(t_c: float) -> RtdSample:
    """A fault-free reading as the MAX31865 (PT100, 430 ohm) quantises it."""
    code = round(celsius_to_ohms(t_c, 100.0) / 430.0 * 32768)
    ohms = code * 430.0 / 32768
    return RtdSample(ohms_to_celsius(ohms, 100.0), ohms, code)


def first_trip(v, sample, start_s, power_w, seconds):
    for i in range(int(seconds / 0.25)):
        trip = v.update(sample, start_s + i * 0.25, power_w)[1]
        if trip:
            return start_s + i * 0.25, trip
    return None, None


def test_frozen_code_trips_when_the_heat_put_in_should_have_moved_it():
    """Full power into a cold mat whose reading never changes: a slow mat would have moved
    frozen_steps ADC steps within three minutes; the rule trips then, not at frozen_s."""
    v = SensorValidator(CFG, 0.0, MatParams())
    at_s, trip = first_trip(v, pt100(22.0), 0.0, 80.0, 300.0)
    assert trip == "sensor_frozen"
    assert 30.0 <= at_s <= 180.0          # measured: 162 s on the reference [model]
    assert v.bound.rise_c >= CFG.frozen_steps * step_c(pt100(22.0))


def test_frozen_code_never_trips_at_a_steady_setpoint():
    """A quiet converter at 40 °C for an hour with the heater holding it (hold power of the
    reference mat, ~27 W, plus the patient's ~24 W): the same code is no fault."""
    v = SensorValidator(CFG, 0.0, MatParams())
    for power_w in (27.0, 51.0):
        assert first_trip(v, pt100(40.0), 0.0, power_w, 3600.0) == (None, None)


def test_frozen_needs_the_code_to_stay_the_same():
    v = SensorValidator(CFG, 0.0, MatParams())
    for i in range(2000):                 # full power, but the reading keeps moving by one step
        sample = pt100(22.0 + (i // 8) * 0.035)
        assert v.update(sample, i * 0.25, 80.0)[1] is None


def test_frozen_is_not_tripped_before_frozen_s():
    cfg = SafetyConfig(frozen_s=60.0, frozen_steps=2.0)
    v = SensorValidator(cfg, 0.0, MatParams(element_j_per_k=60.0, surface_j_per_k=200.0))
    at_s, trip = first_trip(v, pt100(22.0), 0.0, 80.0, 300.0)
    assert trip == "sensor_frozen" and at_s == 60.0


def test_latch_needs_acknowledgment_after_the_condition_is_gone():
    latch = FaultLatch()
    fault = latch.latch("rtd_open", 1.0, {})
    assert fault is not None and latch.latch("rtd_open", 2.0, {}) is None
    assert latch.acknowledge(None, "user") == ([], ["rtd_open"], [])
    fault.present = False
    assert latch.acknowledge(None, "user") == (["rtd_open"], [], [])
    assert not latch.blocks_heat()


def test_stuck_ssr_needs_service_and_repeated_over_temperature_too():
    sup = SafetySupervisor(CFG, MatParams(), 0.0)
    sup.trip("heating_while_off", 0.0, {})
    sup.latch.active["heating_while_off"].present = False
    assert sup.latch.acknowledge(None, "clinic") == ([], [], ["heating_while_off"])
    assert sup.latch.acknowledge(None, "service") == (["heating_while_off"], [], [])
    first = sup.trip("over_temperature", 10.0, {})
    assert first.needs == "ack"
    first.present = False
    sup.latch.acknowledge(None, "user")
    assert sup.trip("over_temperature", 3600.0, {}).needs == "service"


def test_over_temperature_from_one_valid_reading():
    sup = SafetySupervisor(CFG, MatParams(), 0.0)
    base = dict(duty=0.3, relay_closed=True, setpoint_c=40.0, ui_clients=1, heater_w=80.0)
    sup.evaluate(Inputs(now_s=0.25, sample=good(41.9), **base))
    verdict = sup.evaluate(Inputs(now_s=0.5, sample=good(42.0), **base))
    assert [f.code for f in verdict.new_faults] == ["over_temperature"]
    assert not verdict.heat_allowed


def _excess(readings, duty=0.0, setpoint_c=None, period_s=0.25):
    """Feed ExcessHeat a reading function of time; returns the first trip time or None."""
    check = ExcessHeat(CFG, Envelope.from_config(CFG))
    t = 0.0
    while t < 900.0:
        if check.update(t, readings(t), duty, setpoint_c):
            return t
        t += period_s
    return None


def test_commanded_off_and_still_rising_above_body_temperature_is_a_stuck_ssr():
    # 0.01 K/s, steadily: what a welded SSR does; a working mat's rise slows from the cut on.
    tripped = _excess(lambda t: 37.0 + 0.01 * t)
    assert tripped is not None and CFG.stuck_settle_s <= tripped <= CFG.stuck_settle_s + 10.0


def test_the_elements_stored_heat_arriving_after_the_cut_is_not_a_fault():
    # The surface rises 1.5 °C after the cut and levels off (time constant 60 s): stored heat.
    assert _excess(lambda t: 38.0 + 1.5 * (1 - math.exp(-t / 60.0))) is None


def test_a_patient_warming_a_cool_mat_is_not_a_fault():
    # A body at 36 °C on a 30 °C mat, heater off: the mat rises towards 36, never above 36.5.
    assert _excess(lambda t: 36.0 - 6.0 * math.exp(-t / 200.0)) is None


def test_rising_well_above_the_setpoint_with_the_heater_off_trips_early():
    tripped = _excess(lambda t: 41.1 + 0.01 * t, setpoint_c=40.0)
    assert tripped is not None and tripped <= CFG.stuck_window_s + CFG.balance_confirm_s + 0.5


def test_an_accelerating_rise_just_above_the_setpoint_with_the_heater_off_trips():
    # A welded SSR under a patient: 0.4 °C past the setpoint and the rise still speeding up.
    tripped = _excess(lambda t: 40.3 + 0.0002 * t * t + 0.005 * t, setpoint_c=40.0)
    assert tripped is not None and tripped <= 1.5 * CFG.stuck_window_s + CFG.balance_confirm_s + 0.5


def test_a_get_up_overshoot_that_slows_down_is_not_a_fault():
    # A patient got up: the element's stored heat takes the reading 0.9 °C past the setpoint,
    # fast at first, then slower and slower.
    assert _excess(lambda t: 40.0 + 0.9 * (1 - math.exp(-t / 40.0)), setpoint_c=40.0) is None


def test_a_get_up_coast_past_the_margin_that_slows_down_is_not_a_fault():
    # A strong element behind a slow sensor: when the patient gets up, its stored heat takes the
    # reading 2 °C past the setpoint (time constant 50 s); past 41 °C it still rises 0.6 °C per
    # window, but each half-window more slowly (0.74 ×). Sweep 11 #218: tripped at 79 s.
    assert _excess(lambda t: 40.0 + 2.0 * (1 - math.exp(-t / 50.0)), setpoint_c=40.0) is None


def test_a_welded_ssr_whose_rise_eases_towards_its_equilibrium_still_trips_early():
    # Full power on a mat held at 38 °C: the rise eases only as the mat nears its ~68 °C
    # equilibrium (time constant 700 s, each half-window 0.98 × the one before), far from the
    # fading of stored heat: the slowing exemption must not delay the early check.
    tripped = _excess(lambda t: 38.0 + 30.0 * (1 - math.exp(-t / 700.0)), setpoint_c=38.0)
    assert tripped is not None and tripped <= CFG.stuck_window_s + CFG.balance_confirm_s + 0.5


def test_a_low_warm_up_overshoot_below_the_floor_is_not_a_fault():
    # A slow sensor over a strong element: a low (36 °C) warm-up coasts to 37.8 °C and levels off.
    assert _excess(lambda t: 37.0 + 0.8 * (1 - math.exp(-t / 60.0)), setpoint_c=36.0) is None


def test_excess_check_needs_the_heater_commanded_off():
    assert _excess(lambda t: 37.0 + 0.01 * t, duty=0.2) is None


def test_fall_bound_covers_the_coldest_room_and_heaviest_patient():
    env = Envelope.from_config(CFG)
    model = MatParams()
    # At 40 °C: 1.4 × 1.5 W/K × 25 K + 6 W/K × 8 K over 0.6 × 1200 J/K.
    assert env.max_fall_c_per_s(model, 40.0) == pytest.approx((2.1 * 25 + 48) / 720)
    # A detached sensor relaxing to a 15 °C room (60 s) falls faster than that at 40 °C.
    assert 25 / 60 > env.max_fall_c_per_s(model, 40.0)


def test_ui_rule_counts_only_while_heat_is_wanted():
    sup = SafetySupervisor(SafetyConfig(ui_lost_s=5.0), MatParams(), 0.0)
    base = dict(duty=0.3, relay_closed=True, ui_clients=0, heater_w=80.0)
    for i in range(40):
        assert not sup.evaluate(Inputs(now_s=i * 0.25, sample=good(30.0 + i * 0.001),
                                       setpoint_c=None, **base)).new_faults
    codes = []
    for i in range(40, 70):
        codes += [f.code for f in sup.evaluate(Inputs(now_s=i * 0.25, sample=good(30.0 + i * 0.001),
                                                      setpoint_c=40.0, **base)).new_faults]
    assert codes == ["ui_lost"]
