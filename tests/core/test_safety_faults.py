"""Every safety rule, with its fault injected into the full simulated stack.

Each test runs the real driver on the fake MAX31865, mock pins and the mat model in virtual time,
injects one fault while heating at level high, and checks the rule's deadline, that power to the
mat is zero within one sample period of detection, the relay where the rule opens it, the latched
code, the session outcome and the true surface temperature. Deadlines are those of issue 3.
"""

import pytest

from appliance.alarms import CATALOGUE
from tests.core.conftest import PERIOD_S, fault_at, run, scenario, trace_after

INJECT_S = 600.0  # well after the reference mat settled at 40 °C
# Not the sweep's 90 s: at 40 °C the 80 W an open heater leaves missing is what the envelope's
# weakest element (0.6 x) under its heaviest, coolest patient (6 W/K at 32 °C) leaves missing,
# and the check may trip only once no working mat explains it — as the mat cools and the
# controller's power rises (docs/safety.md, "An open heater cannot always be caught in 90 s").
# Measured 130.5 s; 87 s when the check allowed the patient or the weak element, not both.
OPEN_HEATER_AT_HIGH_S = 150.0

CASES = [  # fault, expected code, detection deadline (s), max surface (°C)
    ("rtd_open", "rtd_open", 1.0, 41.0),
    ("rtd_short", "rtd_short", 1.0, 41.0),
    ("refin", "refin", 1.0, 41.0),
    ("ovuv", "ovuv", 1.0, 41.0),
    ("spi_error", "spi_error", 1.0, 41.0),
    ("loop_stall", "loop_stall", 1.0, 41.0),
    ("stale", "sensor_stale", 15.0, 41.0),
    ("heater_open", "no_heating_effect", OPEN_HEATER_AT_HIGH_S, 41.0),
    ("sensor_detached", "sensor_detached", 90.0, 41.0),
    ("ssr_stuck_on", "heating_while_off", 120.0, 42.0),
    ("ui_disconnect", "ui_lost", 30.0 + 1.0, 41.0),
]


@pytest.mark.parametrize("fault, code, deadline_s, max_surface_c", CASES, ids=[c[0] for c in CASES])
def test_fault_trips_within_deadline_and_heater_is_off(fault, code, deadline_s, max_surface_c):
    result, runner = run(scenario(events=[fault_at(INJECT_S, fault)]))
    assert [f["code"] for f in result["faults"]] == [code]
    trip = result["faults"][0]
    detected_after = trip["detected_at_s"] - INJECT_S
    assert 0 <= detected_after <= deadline_s
    assert trip["heater_off_at_s"] is not None
    assert trip["heater_off_at_s"] <= trip["detected_at_s"] + PERIOD_S
    after = trace_after(runner, trip["detected_at_s"] + PERIOD_S)
    assert all(row[4] == 0.0 for row in after), "the SSR is driven again after the trip"
    assert not any(row[5] for row in after), "the series relay is closed after the trip"
    assert result["max_surface_c"] <= max_surface_c
    if CATALOGUE[code].ends_session:
        assert result["outcome"] == "fault"
    else:
        assert result["outcome"] == "running"  # the traction session goes on without heat


@pytest.mark.parametrize("opens_s", [30.0, 120.0, 300.0])
def test_an_open_heater_in_the_warm_up_is_caught_within_90_s(opens_s):
    """At full power on a mat still below body temperature no patient can explain missing heat.
    The element's stored heat keeps the surface rising, ever more slowly, for a minute or two
    after it opens: only the last ``missing_warming_window_s`` of rise counts as a working heater
    (with 60 s: 95–147 s)."""
    result, runner = run(scenario(duration_s=opens_s + 200, events=[fault_at(opens_s, "heater_open")]))
    assert [f["code"] for f in result["faults"]] == ["no_heating_effect"]
    trip = result["faults"][0]
    assert trip["detected_at_s"] - opens_s <= 90.0
    assert all(row[4] == 0.0 and not row[5] for row in trace_after(runner, trip["detected_at_s"] + PERIOD_S))


def test_noise_spikes_are_rejected_without_alarm_or_control_upset():
    result, _ = run(scenario(duration_s=1300, program="quick",
                             events=[fault_at(0.0, "noise_spikes")]))
    assert result["faults"] == []
    assert result["outcome"] == "completed"
    assert result["overshoot_c"] <= 0.5


def test_over_temperature_trips_at_trip_c_and_opens_the_relay():
    # A welded SSR with the heat-balance and stuck checks made blind: the temperature limit
    # is the last line and must still cut the power.
    result, runner = run(scenario(events=[fault_at(INJECT_S, "ssr_stuck_on")],
                                  safety={"stuck_min_rise_c": 5.0}))
    codes = [f["code"] for f in result["faults"]]
    assert codes[0] == "over_temperature"
    trip = result["faults"][0]
    assert trip["heater_off_at_s"] <= trip["detected_at_s"] + PERIOD_S
    readings = [row[1] for row in runner.trace if row[0] < trip["detected_at_s"] and row[1] is not None]
    assert max(readings) < 42.0  # it tripped at the first reading at or over trip_c
    assert not any(row[5] for row in trace_after(runner, trip["detected_at_s"] + PERIOD_S))


def test_without_a_relay_a_welded_ssr_cannot_be_cut_and_that_is_reported():
    data = scenario(events=[fault_at(INJECT_S, "ssr_stuck_on")])
    data["run"]["relay"] = False
    result, _ = run(data)
    trip = result["faults"][0]
    assert trip["code"] == "heating_while_off"
    assert trip["heater_off_at_s"] is None  # the honest answer: software alone cannot cut it


def test_a_weak_element_that_cannot_reach_the_level_is_a_notice_not_a_fault():
    """A working 50 W element in a cold room with a patient on it cannot reach High: the
    session goes on at full power, nothing latches, and status says what the mat holds."""
    events = [{"at_s": 300.0, "action": "patient_on"}]
    result, runner = run(scenario(duration_s=1500, events=events,
                                  plant={"heater_w": 50.0, "ambient_c": 17.0}))
    assert result["faults"] == []
    assert result["outcome"] == "running"
    assert all(row[4] == 1.0 for row in trace_after(runner, 600.0))
    snapshot = runner.core.snapshot()
    assert not [a for a in snapshot["alarms"] if a["code"] == "cannot_reach"]  # no overlay
    notice = [n for n in snapshot["notices"] if n["code"] == "cannot_reach"]
    assert len(notice) == 1 and notice[0]["priority"] == "low"
    holds = notice[0]["params"]["holding_c"]
    assert notice[0]["params"]["level"] == "high" and 37.0 < holds < 39.5
    assert f"{holds:.1f} °C" in notice[0]["text"]


def test_the_weakest_element_under_the_heaviest_patient_is_no_open_heater():
    """The envelope's corner where a working mat looks most like an open heater: a 0.6 x element
    that a warm room lets reach High, then a 6 W/K patient at 32 °C lies down. Against the
    nominal model, 40 % of the power sent after she lay down goes missing *and* she takes 48 W:
    the missing-heat check must allow both at once (it once allowed the larger of the two and
    tripped here 45 s after she lay down; sweep 11 #172 is such a mat)."""
    events = [{"at_s": 700.0, "action": "patient_on"}]
    result, _ = run(scenario(duration_s=1500, events=events,
                             plant={"heater_w": 48.0, "ambient_c": 31.0,
                                    "patient_w_per_k": 6.0, "patient_c": 32.0}))
    assert result["faults"] == []
    assert result["outcome"] == "running"


def test_heating_ends_with_the_session():
    result, runner = run(scenario(duration_s=1260, program="quick"))
    assert result["outcome"] == "completed"
    after = trace_after(runner, 1200.0 + PERIOD_S)
    assert after and all(row[4] == 0.0 and not row[5] for row in after)


def test_pause_turns_heat_off_and_a_long_pause_ends_the_session():
    events = [{"at_s": 600.0, "action": "pause"}, {"at_s": 700.0, "action": "resume"},
              {"at_s": 800.0, "action": "pause"}]
    result, runner = run(scenario(duration_s=1500, events=events, session={"max_pause_min": 10.0}))
    paused = [row for row in runner.trace if 600.0 + PERIOD_S <= row[0] < 700.0]
    assert paused and all(row[4] == 0.0 and not row[5] for row in paused)
    resumed = [row for row in runner.trace if 700.0 + PERIOD_S <= row[0] < 800.0]
    assert any(row[4] > 0 for row in resumed)
    assert result["outcome"] == "stopped"
    ended = next(row[0] for row in runner.trace if row[6] == "stopped")
    assert 800.0 + 600.0 <= ended <= 800.0 + 600.0 + 1.0


def test_heating_time_cap_stops_heat_but_not_the_session():
    result, runner = run(scenario(duration_s=1260, program="quick", safety={"max_heating_min": 5.0}))
    codes = [f["code"] for f in result["faults"]]
    assert codes == ["heating_time_cap"]
    trip = result["faults"][0]
    assert 300.0 <= trip["detected_at_s"] <= 300.0 + 2 * PERIOD_S
    assert trip["heater_off_at_s"] <= trip["detected_at_s"] + PERIOD_S
    assert all(row[4] == 0.0 for row in trace_after(runner, trip["detected_at_s"] + PERIOD_S))
    assert result["outcome"] == "completed"


def test_ui_loss_stops_heat_until_a_person_acknowledges():
    events = [fault_at(INJECT_S, "ui_disconnect"), {"at_s": 700.0, "action": "clear_fault"},
              {"at_s": 720.0, "action": "ack"}]
    result, runner = run(scenario(duration_s=900, events=events))
    assert [f["code"] for f in result["faults"]] == ["ui_lost"]
    between = [row for row in runner.trace if 632.0 <= row[0] < 720.0]
    assert all(row[4] == 0.0 for row in between)  # reconnecting alone brings no heat back
    assert any(row[4] > 0 for row in trace_after(runner, 721.0))
    assert result["outcome"] == "running"


@pytest.mark.parametrize("noise_c", [0.0, 0.01])
def test_a_quiet_sensor_never_trips_at_session_start_or_at_the_setpoint(noise_c):
    """A real MAX31865 can repeat one code for many seconds: with no noise at all the reference
    mat used to trip sensor_frozen 10 s into every session (issue 15)."""
    result, runner = run(scenario(duration_s=1860, program="standard", plant={"sensor_noise_c": noise_c}))
    assert result["faults"] == [] and result["outcome"] == "completed"
    codes = [row for row in runner.trace if row[0] >= 900.0]
    assert codes, "the steady part of the session is in the trace"


@pytest.mark.parametrize("inject_s", [5.0, 600.0])
def test_a_stopped_quiet_converter_is_caught_within_15_s(inject_s):
    """At a steady mat a quiet working chip and a stopped one give the same constant code; the
    liveness probe (fault-detection cycle every rtd_probe_period_s) tells them apart."""
    result, runner = run(scenario(events=[fault_at(inject_s, "stale")], plant={"sensor_noise_c": 0.0}))
    assert [f["code"] for f in result["faults"]] == ["sensor_stale"]
    trip = result["faults"][0]
    assert 0 <= trip["detected_at_s"] - inject_s <= 5.0 + 0.75 + PERIOD_S
    assert trip["heater_off_at_s"] <= trip["detected_at_s"] + PERIOD_S
    assert not any(row[5] for row in trace_after(runner, trip["detected_at_s"] + PERIOD_S))
