"""The pre-warm in the core: heats to the capped `low` level with no session, under every
safety rule, ends by itself on monotonic time, and hands over to a session."""

import pytest

from appliance.errors import FAULT_LATCHED, INVALID_PARAMS, NOT_ALLOWED, CommandError


def test_prewarm_holds_low_level_and_ends_by_itself(stack):
    s = stack()
    state = s.core.start_prewarm(20 * 60)
    assert state == {"active": True, "remaining_s": 1200.0, "setpoint_c": 36.0, "by": "system"}
    s.tick(15 * 60)
    snap = s.core.snapshot()
    assert snap["session"]["state"] == "idle"          # no treatment session
    assert snap["prewarm"]["active"] and snap["setpoint_c"] == 36.0
    assert abs(snap["mat_c"] - 36.0) < 0.5
    assert s.surface_c < 36.8
    s.tick(5 * 60 + 1)
    snap = s.core.snapshot()
    assert not snap["prewarm"]["active"]
    assert s.core.duty == 0 and not snap["relay_closed"] and not snap["heating"]


def test_prewarm_setpoint_is_clamped_to_max_setpoint(stack):
    s = stack({"safety": {"max_setpoint_c": 35.0}, "levels": {"low": 35.0, "medium": 35.0,
                                                                "high": 35.0}})
    s.core.settings_values["levels"]["low"] = 39.0       # even if a bad value got in
    assert s.core.start_prewarm(600)["setpoint_c"] == 35.0
    s.tick(540)
    assert s.core.mat_c < 35.5


def test_prewarm_stop_and_session_takeover(stack):
    s = stack()
    s.core.start_prewarm(600)
    s.tick(60)
    assert s.core.stop_prewarm() and s.core.duty == 0 and not s.core.heating
    assert s.core.stop_prewarm() is False
    s.core.start_prewarm(600)
    s.tick(120)
    assert s.core.heating
    resets = []
    s.core.controller.reset = lambda *a, _r=s.core.controller.reset: (resets.append(1), _r(*a))
    s.core.start_session("standard", "medium")
    s.tick(1)
    snap = s.core.snapshot()
    assert snap["session"]["state"] == "running" and not snap["prewarm"]["active"]
    assert snap["setpoint_c"] == 38.0 and snap["heating"] and snap["relay_closed"]
    assert resets == []                                  # seamless: the loop kept its state


def test_prewarm_is_refused_while_faulted_busy_or_too_long(stack):
    s = stack()
    with pytest.raises(CommandError) as exc:
        s.core.start_prewarm(61 * 60)                    # longer than max_heating_min
    assert exc.value.code == INVALID_PARAMS
    s.core.start_session("quick", "low")
    with pytest.raises(CommandError) as exc:
        s.core.start_prewarm(600)
    assert exc.value.code == NOT_ALLOWED
    s.core.stop()
    s.core.inject("rtd_open")
    s.tick(2)
    with pytest.raises(CommandError) as exc:
        s.core.start_prewarm(600)
    assert exc.value.code == FAULT_LATCHED


def test_a_fault_ends_the_prewarm_and_the_heater_is_off(stack):
    s = stack()
    s.core.start_prewarm(30 * 60)
    s.tick(120)
    assert s.core.heating
    s.core.inject("rtd_open")
    s.tick(1.0)
    snap = s.core.snapshot()
    assert not snap["prewarm"]["active"] and s.core.duty == 0 and not snap["relay_closed"]
    assert "rtd_open" in [a["code"] for a in snap["alarms"]]
    s.core.clear_injected()
    s.tick(5)
    assert s.core.duty == 0                              # nothing resumes by itself


def test_prewarm_counts_towards_the_heating_time_cap(stack):
    s = stack({"safety": {"max_heating_min": 5.0}})
    s.core.start_prewarm(5 * 60)
    s.tick(200)
    s.core.start_prewarm(5 * 60)        # a new end time does not restart the heating-time count
    s.tick(110)
    snap = s.core.snapshot()
    assert "heating_time_cap" in [a["code"] for a in snap["alarms"]]
    assert not snap["prewarm"]["active"] and s.core.duty == 0


def test_ui_loss_rule_applies_to_the_prewarm(stack):
    s = stack({"safety": {"ui_lost_s": 10.0}})
    s.core.start_prewarm(600)
    s.core.set_ui_clients(0)
    s.tick(11)
    snap = s.core.snapshot()
    assert "ui_lost" in [a["code"] for a in snap["alarms"]]
    assert not snap["prewarm"]["active"] and s.core.duty == 0


def test_prewarm_is_audited_and_never_resumed_after_a_restart(stack, history):
    s = stack(history=history)
    s.core.start_prewarm(600, by="clinic")
    s.tick(60)
    s.core.shutdown()
    entries, _ = history.audit_log(10, 0)
    actions = [(e["action"], e["role"]) for e in entries]
    assert ("prewarm.start", "clinic") in actions and ("prewarm.end", "system") in actions
    assert history.sessions(10, 0)[1] == 0               # not a treatment session
    assert history.counters()["heater_hours"] > 0
    s2 = stack(history=history)                          # the process restarts
    s2.tick(10)
    assert not s2.core.snapshot()["prewarm"]["active"] and s2.core.duty == 0


def test_audio_pause_never_clears_an_alarm(stack):
    s = stack()
    s.core.inject("rtd_open")
    s.tick(1)
    with pytest.raises(CommandError):
        s.core.silence(121)
    audio = s.core.silence(60)
    assert audio["paused"] and audio["remaining_s"] == 60.0
    assert [a["code"] for a in s.core.snapshot()["alarms"]] == ["rtd_open"]
    s.tick(61)
    assert not s.core.snapshot()["audio"]["paused"]
    s.core.silence(60)
    s.core.clear_injected()
    s.core.inject("spi_error")             # a new alarm condition ends the pause
    s.tick(2)
    assert not s.core.snapshot()["audio"]["paused"]
