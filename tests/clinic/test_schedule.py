"""Clinic schedules: pure decisions under a controllable clock, and the APScheduler glue driving
the simulated stack in virtual time."""

import asyncio
from datetime import timedelta, timezone

import pytest

from appliance.config import ClinicConfig
from appliance.schedule import (FIRED_KEY, ClinicScheduler, FiredDays, PrewarmPlan, decide_prewarm,
                                maintenance_reminders)

from .conftest import utc

UTC = timezone.utc
PLAN = PrewarmPlan(True, "07:30", ("mon", "tue", "wed", "thu", "fri"), 20, 30, 300.0)
MONDAY = (2026, 1, 5)           # 2026-01-05 is a Monday
MAX_HEAT_S = 3600.0


def decide(now, fired=(), synced=True, plan=PLAN):
    return decide_prewarm(plan, now, set(fired), clock_synced=synced, max_heating_s=MAX_HEAT_S)


def test_on_time_it_fires_until_hold_after_the_set_time():
    d = decide(utc(*MONDAY, 7, 10))
    assert d.fire and d.duration_s == 50 * 60 and d.day == "2026-01-05"


def test_a_start_within_the_grace_is_shortened_not_extended():
    d = decide(utc(*MONDAY, 7, 13))
    assert d.fire and d.duration_s == 47 * 60


def test_a_stale_prewarm_after_a_forward_jump_does_not_fire():
    # NTP arrives late: the clock steps from 06:40 to 09:05; the 07:10 start is long past.
    d = decide(utc(*MONDAY, 9, 5))
    assert not d.fire and "missed" in d.reason and d.mark
    d = decide(utc(*MONDAY, 7, 15, 1))              # just over the 5-minute grace
    assert not d.fire


def test_a_backward_jump_does_not_fire_twice_the_same_day():
    fired = FiredDays()
    d = decide(utc(*MONDAY, 7, 10), fired.days)
    assert d.fire
    fired.mark(d.day)
    d = decide(utc(*MONDAY, 7, 10, 30), fired.days)     # the clock stepped back 0:30 ... or hours
    assert not d.fire and "already" in d.reason
    assert decide(utc(2026, 1, 6, 7, 10), fired.days).fire     # the next day fires again


def test_weekdays_disabled_and_unsynchronised_clock():
    assert not decide(utc(2026, 1, 10, 7, 10)).fire                      # Saturday
    assert not decide(utc(*MONDAY, 7, 10), plan=PrewarmPlan(False, "07:30", PLAN.weekdays, 20, 30,
                                                            300.0)).fire
    d = decide(utc(*MONDAY, 7, 10), synced=False)
    assert not d.fire and "synchronised" in d.reason and not d.mark


def test_duration_never_exceeds_max_heating():
    d = decide_prewarm(PLAN, utc(*MONDAY, 7, 10), set(), clock_synced=True, max_heating_s=1800)
    assert d.duration_s == 1800


def test_fired_days_survive_a_restart(history):
    FiredDays(history).mark("2026-01-05")
    assert "2026-01-05" in FiredDays(history)
    for i in range(20):
        FiredDays(history).mark(f"2026-02-{i + 1:02d}")
    assert len(history.get_setting(FIRED_KEY)) == 14


def test_maintenance_reminders():
    cfg = ClinicConfig()
    now = utc(*MONDAY, 8, 0)
    recent = {"at": (now - timedelta(hours=6)).isoformat(), "passed": True}
    assert maintenance_reminders({"heater_hours": 10, "relay_cycles": 5}, recent, now, cfg) == []
    codes = [r["code"] for r in maintenance_reminders(
        {"heater_hours": 2500, "relay_cycles": 200000},
        {"at": (now - timedelta(days=3)).isoformat()}, now, cfg)]
    assert codes == ["heater_hours", "relay_cycles", "selftest_overdue"]
    assert [r["code"] for r in maintenance_reminders({}, None, now, cfg)] == ["selftest_overdue"]
    assert all(r["priority"] == "low" for r in maintenance_reminders({}, None, now, cfg))


# -- the glue, on the simulated stack ----------------------------------------------------------

CLINIC = {"clinic": {"prewarm_enabled": True, "prewarm_time": "07:30", "prewarm_lead_min": 20,
                     "prewarm_hold_min": 30}}


def _scheduler(s, history):
    return ClinicScheduler(s.core, history, tz=UTC, wall=s.clock.wall, clock_synced=lambda: True)


def test_jobs_are_rebuilt_from_settings_in_memory_only(stack, history):
    s = stack(CLINIC, history=history)

    async def main():
        sched = _scheduler(s, history)
        sched.start()
        try:
            jobs = {j.id: j for j in sched.scheduler.get_jobs()}
            assert set(jobs) == {"prewarm", "selftest", "prune", "reminders"}
            from apscheduler.jobstores.memory import MemoryJobStore
            assert isinstance(sched.scheduler._jobstores["default"], MemoryJobStore)
            pw = jobs["prewarm"]
            assert pw.misfire_grace_time == 300 and pw.coalesce
            assert asyncio.iscoroutinefunction(pw.func)          # runs on the loop thread
            nxt = pw.trigger.get_next_fire_time(None, utc(*MONDAY, 6, 0))
            assert nxt == utc(*MONDAY, 7, 10)
            assert pw.trigger.get_next_fire_time(None, utc(2026, 1, 9, 8, 0)) == \
                utc(2026, 1, 12, 7, 10)                          # Friday after -> Monday
            # A settings change rebuilds the jobs at once.
            s.core.apply_settings({"prewarm_time": "08:00", "selftest_time": "01:15"})
            jobs = {j.id: j for j in sched.scheduler.get_jobs()}
            assert jobs["prewarm"].trigger.get_next_fire_time(None, utc(*MONDAY, 6, 0)) == \
                utc(*MONDAY, 7, 40)
            assert jobs["selftest"].trigger.get_next_fire_time(None, utc(*MONDAY, 0, 0)) == \
                utc(*MONDAY, 1, 15)
            s.core.apply_settings({"prewarm_enabled": False})
            assert "prewarm" not in {j.id for j in sched.scheduler.get_jobs()}
        finally:
            sched.shutdown()
    asyncio.run(main())


def test_prewarm_starts_on_time_holds_the_low_level_and_ends_itself(stack, history):
    # Virtual wall clock: Monday 06:00 UTC; the stack runs in virtual time.
    s = stack(CLINIC, history=history, start_wall=utc(*MONDAY, 6, 0))

    async def main():
        sched = _scheduler(s, history)
        sched.start()
        try:
            job = sched.scheduler.get_job("prewarm")
            fire_at = job.trigger.get_next_fire_time(None, s.clock.wall())
            assert fire_at == utc(*MONDAY, 7, 10)
            s.tick((fire_at - s.clock.wall()).total_seconds())   # idle until then
            assert s.core.duty == 0
            decision = await job.func()                          # what APScheduler runs
            assert decision.fire
            state = s.core.snapshot()
            assert state["prewarm"]["active"] and state["prewarm"]["by"] == "schedule"
            assert state["session"]["state"] == "idle"
            # 07:30: the mat has reached low (36 °C) and holds it; the cap is respected.
            peak = []
            s.tick(20 * 60, every=lambda st: peak.append(st.surface_c))
            state = s.core.snapshot()
            assert abs(state["mat_c"] - 36.0) < 0.5 and state["heating"]
            s.tick(29 * 60, every=lambda st: peak.append(st.surface_c))
            assert s.core.snapshot()["prewarm"]["active"]
            assert max(peak) < 37.0
            s.tick(61)                                           # 08:00: ends by itself
            state = s.core.snapshot()
            assert not state["prewarm"]["active"] and s.core.duty == 0
            assert not state["relay_closed"]
            # The clock jumps back an hour (NTP): the job runs again -- and does not fire.
            s.clock._start_wall -= timedelta(hours=1)
            again = await job.func()
            assert not again.fire and "already" in again.reason
            s.tick(10)
            assert s.core.duty == 0
        finally:
            sched.shutdown()
    asyncio.run(main())
    actions = [e["action"] for e in history.audit_log(50, 0)[0]]
    assert "prewarm.start" in actions and "prewarm.end" in actions and "prewarm.skipped" in actions


def test_restart_the_same_morning_does_not_refire(stack, history):
    s = stack(CLINIC, history=history, start_wall=utc(*MONDAY, 7, 10))

    async def run_job(st):
        sched = _scheduler(st, history)
        sched.start()
        try:
            return await sched.scheduler.get_job("prewarm").func()
        finally:
            sched.shutdown()
    assert asyncio.run(run_job(s)).fire
    s.core.shutdown()
    s2 = stack(CLINIC, history=history, start_wall=utc(*MONDAY, 7, 11))   # the process restarts
    assert not s2.core.snapshot()["prewarm"]["active"]                      # nothing resumed
    decision = asyncio.run(run_job(s2))
    assert not decision.fire and "already" in decision.reason


def test_nightly_selftest_failure_latches_a_medium_alarm(stack, history):
    s = stack(history=history, start_wall=utc(*MONDAY, 2, 30))

    async def main():
        sched = _scheduler(s, history)
        sched.start()
        try:
            job = sched.scheduler.get_job("selftest")
            ok = await job.func()
            assert ok["passed"] and not s.core.snapshot()["alarms"]
            s.core.inject("rtd_open")                    # the chip reports an open RTD
            result = await job.func()
            assert not result["passed"]
        finally:
            sched.shutdown()
    asyncio.run(main())
    s.tick(1)
    alarms = {a["code"]: a for a in s.core.snapshot()["alarms"]}
    assert alarms["selftest_failed"]["priority"] == "medium"
    assert alarms["selftest_failed"]["needs"] == "service"
    # The morning staff cannot heat until service has cleared it.
    s.core.clear_injected()
    s.tick(2)
    from appliance.errors import CommandError
    with pytest.raises(CommandError):
        s.core.start_prewarm(600)


def test_prune_and_reminder_jobs(stack, history):
    s = stack(history=history, start_wall=utc(*MONDAY, 3, 0))
    history.add_counters(heater_s=2500 * 3600)

    async def main():
        sched = _scheduler(s, history)
        sched.start()
        try:
            await sched.scheduler.get_job("prune").func()
            await sched.scheduler.get_job("reminders").func()
        finally:
            sched.shutdown()
    asyncio.run(main())
    codes = [r["code"] for r in s.core.snapshot()["reminders"]]
    assert "heater_hours" in codes and "selftest_overdue" in codes
    assert s.core.snapshot()["alarms"] == []           # reminders are not alarms
