"""Clinic schedules: weekday pre-warm, nightly self-test, history pruning, maintenance reminders.

Two layers:

- **Pure decisions** (:func:`decide_prewarm`, :func:`maintenance_reminders`, :class:`FiredDays`):
  the wall-clock time is passed in, so a test can jump the clock wherever it likes.
- **Thin APScheduler 3.x glue** (:class:`ClinicScheduler`): an ``AsyncIOScheduler`` started inside
  the appliance's running loop, with a ``MemoryJobStore`` only. Its jobs are *rebuilt from the
  settings* at every start and after every schedule change; nothing is pickled, nothing survives a
  restart except the per-day "pre-warm fired" record (a list of local dates in the settings table).

Every job is a coroutine, so it runs on the event-loop thread like everything else that touches
the (single-threaded) core; AsyncIOScheduler would run a plain function in a worker thread.

The scheduler is never a safety timer. It only *asks* the core to start a pre-warm of a given
length; the core ends it on ``time.monotonic()``, refuses it while a fault is latched, and the
supervisor applies every rule to it. A missed or broken scheduler means a cold mat, never a hot one.

Wall-clock jumps (a Pi without RTC boots with the last shutdown's time; NTP steps it later):

- forward jump past the pre-warm time: APScheduler's ``misfire_grace_time`` (``prewarm_grace_min``,
  5 min) and :func:`decide_prewarm` both refuse a start more than the grace late (``coalesce``: one
  run at most);
- backward jump after a pre-warm: the fired record keyed by local date says "already done today"
  (kept in memory and in the history settings, so a restart the same morning does not re-fire);
- an unsynchronised clock (``prewarm_needs_time_sync``): no pre-warm, since 07:10 on a clock that
  is hours wrong could be any time of day.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Callable

from appliance.config import WEEKDAYS, ClinicConfig, minutes_of_day
from appliance.errors import CommandError

log = logging.getLogger("lumbarest.schedule")

FIRED_KEY = "schedule.prewarm_fired"
KEEP_FIRED_DAYS = 14
EARLY_TOLERANCE_S = 60.0
TIMESYNC_FLAG = Path("/run/systemd/timesync/synchronized")   # written by systemd-timesyncd


# -- pure decisions -------------------------------------------------------------------------------

@dataclass(frozen=True)
class PrewarmPlan:
    enabled: bool
    set_time: str            # "HH:MM": the mat is at the low level by then
    weekdays: tuple[str, ...]
    lead_min: int
    hold_min: int
    grace_s: float

    @classmethod
    def from_settings(cls, settings: dict, clinic: ClinicConfig) -> "PrewarmPlan":
        return cls(bool(settings["prewarm_enabled"]), settings["prewarm_time"],
                   tuple(settings["prewarm_weekdays"]), int(settings["prewarm_lead_min"]),
                   int(settings["prewarm_hold_min"]), clinic.prewarm_grace_min * 60)

    @property
    def start_hm(self) -> tuple[int, int]:
        """Local start time: ``lead_min`` before the set time (validated to be after 00:00)."""
        start = max(0, minutes_of_day(self.set_time) - self.lead_min)
        return divmod(start, 60)

    def times_on(self, day: date, tz: tzinfo) -> tuple[datetime, datetime, datetime]:
        """(start, set time, latest end) on ``day`` in ``tz``."""
        sh, sm = self.start_hm
        start = datetime.combine(day, time(sh, sm), tz)
        set_at = datetime.combine(day, time(int(self.set_time[:2]), int(self.set_time[3:])), tz)
        return start, set_at, set_at + timedelta(minutes=self.hold_min)


@dataclass(frozen=True)
class Decision:
    fire: bool
    reason: str
    day: str                  # local ISO date the decision is about
    duration_s: float = 0.0
    mark: bool = False        # record the day as handled (fired, or missed for good)


def decide_prewarm(plan: PrewarmPlan, now: datetime, fired_days: set[str], *,
                   clock_synced: bool, max_heating_s: float) -> Decision:
    """Whether the pre-warm due today starts now, and for how long.

    ``now`` is an aware local datetime. The heating ends ``hold_min`` after the set time whatever
    the start time was (a start within the grace is shortened, never extended); the core caps it
    again at ``max_heating_min``.
    """
    day = now.date()
    key = day.isoformat()
    if not plan.enabled:
        return Decision(False, "pre-warm disabled", key)
    if WEEKDAYS[day.weekday()] not in plan.weekdays:
        return Decision(False, f"no pre-warm on {WEEKDAYS[day.weekday()]}", key)
    if key in fired_days:
        return Decision(False, "already handled today (clock jumped back or restart)", key)
    start, _set_at, end = plan.times_on(day, now.tzinfo)
    late_s = (now - start).total_seconds()
    if late_s < -EARLY_TOLERANCE_S:
        return Decision(False, f"too early by {-late_s:.0f} s", key)
    if late_s > plan.grace_s:
        return Decision(False, f"missed by {late_s / 60:.1f} min (clock jump or downtime): "
                        "not started late", key, mark=True)
    if not clock_synced:
        return Decision(False, "the wall clock is not synchronised: time of day unknown", key)
    duration_s = min((end - now).total_seconds(), max_heating_s)
    if duration_s < 60:
        return Decision(False, "less than a minute left", key, mark=True)
    return Decision(True, "due", key, duration_s, mark=True)


class FiredDays:
    """Local dates on which the pre-warm was handled, in memory and in the history settings."""

    def __init__(self, history=None):
        self.history = history
        self.days: set[str] = set()
        if history is not None:
            try:
                saved = history.get_setting(FIRED_KEY, [])
            except Exception:  # noqa: BLE001 - a bad record must not stop the appliance
                log.exception("cannot read %s", FIRED_KEY)
                saved = []
            if isinstance(saved, list):
                self.days = {d for d in saved if isinstance(d, str)}

    def __contains__(self, day: str) -> bool:
        return day in self.days

    def mark(self, day: str) -> None:
        self.days.add(day)
        self.days = set(sorted(self.days)[-KEEP_FIRED_DAYS:])
        if self.history is not None:
            try:
                self.history.set_setting(FIRED_KEY, sorted(self.days))
            except Exception:  # noqa: BLE001
                log.exception("cannot persist %s", FIRED_KEY)


#: reminders that "Service done" (``maintenance.reset``) clears by starting their count again;
#: the self-test reminder goes away by running a self-test instead
RESETTABLE = ("heater_hours", "relay_cycles")
BASELINE_KEY = "maintenance.baseline"


def since_service(counters: dict, baseline: dict | None) -> dict:
    """Heater hours and relay cycles since the last ``maintenance.reset`` of each."""
    baseline = baseline if isinstance(baseline, dict) else {}
    hours = float(counters.get("heater_hours") or 0.0) - float(baseline.get("heater_hours") or 0.0)
    cycles = int(counters.get("relay_cycles") or 0) - int(baseline.get("relay_cycles") or 0)
    return {"heater_hours": round(max(0.0, hours), 3), "relay_cycles": max(0, cycles)}


def maintenance_reminders(counters: dict, last_selftest: dict | None, now: datetime,
                          clinic: ClinicConfig, baseline: dict | None = None) -> list[dict]:
    """LOW information for staff from the history counters (since the last service reset) and
    the last self-test. Each reminder has a ``code`` and its numbers in ``params`` so a UI can
    word it in its own language; ``title`` and ``text`` are the English words (the CLI)."""
    out = []
    since = since_service(counters, baseline)
    hours = since["heater_hours"]
    if hours >= clinic.service_heater_hours:
        out.append(_reminder("heater_hours", "Service due: heater hours",
                             f"The heater has run {hours:.0f} h (service every "
                             f"{clinic.service_heater_hours:g} h). Call service.",
                             {"hours": round(hours), "every_h": clinic.service_heater_hours}))
    cycles = since["relay_cycles"]
    if cycles >= clinic.service_relay_cycles:
        out.append(_reminder("relay_cycles", "Service due: relay",
                             f"The safety relay has switched {cycles} times (service every "
                             f"{clinic.service_relay_cycles}). Call service.",
                             {"cycles": cycles, "every": clinic.service_relay_cycles}))
    last_at = None
    if isinstance(last_selftest, dict) and isinstance(last_selftest.get("at"), str):
        try:
            last_at = datetime.fromisoformat(last_selftest["at"])
        except ValueError:
            last_at = None
    if last_at is None or last_at.tzinfo is None:
        out.append(_reminder("selftest_overdue", "No self-test on record",
                             "The nightly self-test has not run yet. Leave the unit switched on "
                             "overnight, or run the self-test from the service menu.",
                             {"days": None}))
    else:
        days = (now - last_at).total_seconds() / 86400
        if days >= clinic.selftest_max_age_days:
            out.append(_reminder("selftest_overdue", "Self-test overdue",
                                 f"The last self-test was {days:.0f} days ago. Leave the unit "
                                 "switched on overnight, or run the self-test.",
                                 {"days": round(days)}))
    return out


def _reminder(code: str, title: str, text: str, params: dict) -> dict:
    return {"code": code, "priority": "low", "kind": "information", "title": title, "text": text,
            "params": params, "resettable": code in RESETTABLE}


def system_clock_synced() -> bool:
    """systemd-timesyncd's flag file: present once NTP has set the clock since boot."""
    return TIMESYNC_FLAG.exists()


def local_zone() -> tzinfo:
    from tzlocal import get_localzone  # noqa: PLC0415 - APScheduler's own dependency
    return get_localzone()


# -- APScheduler glue -----------------------------------------------------------------------------

class ClinicScheduler:
    """The appliance's schedules on an ``AsyncIOScheduler``; :meth:`start` inside the running loop.

    :param core: the :class:`appliance.core.Appliance`.
    :param history: the :class:`appliance.history.History` (pruning, counters, the fired record).
    :param wall: ``() -> aware datetime``, the wall clock (tests pass a controllable one).
    :param clock_synced: ``() -> bool``.
    """

    def __init__(self, core, history, *, tz: tzinfo | None = None,
                 wall: Callable[[], datetime] | None = None,
                 clock_synced: Callable[[], bool] | None = None):
        self.core = core
        self.history = history
        self.clinic: ClinicConfig = core.config.clinic
        self.tz = tz or local_zone()
        self.wall = wall or (lambda: datetime.now(self.tz))
        if clock_synced is None:
            needs = self.clinic.prewarm_needs_time_sync and core.config.mode == "hardware"
            clock_synced = system_clock_synced if needs else (lambda: True)
        self.clock_synced = clock_synced
        self.fired = FiredDays(history)
        self.scheduler = None
        self.last_decision: Decision | None = None

    # -- life cycle --
    def start(self) -> None:
        from apscheduler.jobstores.memory import MemoryJobStore  # noqa: PLC0415
        from apscheduler.schedulers.asyncio import AsyncIOScheduler  # noqa: PLC0415

        self.scheduler = AsyncIOScheduler(
            jobstores={"default": MemoryJobStore()}, timezone=self.tz,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300})
        self.rebuild(self.core.settings())
        self.scheduler.start()
        self.core.settings_listeners.append(self.rebuild)
        self.update_reminders()
        log.info("clinic schedules started: %s", ", ".join(j.id for j in self.scheduler.get_jobs()))

    def shutdown(self) -> None:
        if self.rebuild in self.core.settings_listeners:
            self.core.settings_listeners.remove(self.rebuild)
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def rebuild(self, settings: dict) -> None:
        """Remove every job and add them again from ``settings`` (nothing kept from before)."""
        from apscheduler.triggers.cron import CronTrigger  # noqa: PLC0415
        from apscheduler.triggers.interval import IntervalTrigger  # noqa: PLC0415

        sched = self.scheduler
        sched.remove_all_jobs()
        plan = PrewarmPlan.from_settings(settings, self.clinic)
        if plan.enabled and plan.weekdays:
            hour, minute = plan.start_hm
            sched.add_job(self.run_prewarm, CronTrigger(
                day_of_week=",".join(plan.weekdays), hour=hour, minute=minute, timezone=self.tz),
                id="prewarm", name="weekday pre-warm", misfire_grace_time=int(plan.grace_s),
                coalesce=True)
        for job_id, hhmm, func in (("selftest", settings["selftest_time"], self.run_selftest),
                                   ("prune", settings["prune_time"], self.run_prune)):
            sched.add_job(func, CronTrigger(hour=int(hhmm[:2]), minute=int(hhmm[3:]),
                                            timezone=self.tz),
                          id=job_id, name=f"nightly {job_id}", misfire_grace_time=3600,
                          coalesce=True)
        sched.add_job(self.run_reminders, IntervalTrigger(hours=1, timezone=self.tz),
                      id="reminders", name="maintenance reminders", coalesce=True)

    # -- jobs (coroutines: they run on the event-loop thread) --
    async def run_prewarm(self) -> Decision:
        now = self.wall().astimezone(self.tz)
        plan = PrewarmPlan.from_settings(self.core.settings(), self.clinic)
        decision = decide_prewarm(plan, now, self.fired.days, clock_synced=self.clock_synced(),
                                  max_heating_s=self.core.config.safety.max_heating_min * 60)
        self.last_decision = decision
        if decision.mark:
            self.fired.mark(decision.day)
        if decision.fire:
            try:
                self.core.start_prewarm(decision.duration_s, by="schedule")
                log.info("scheduled pre-warm started for %.0f min", decision.duration_s / 60)
                return decision
            except CommandError as exc:
                decision = Decision(False, exc.message, decision.day)
                self.last_decision = decision
        log.info("scheduled pre-warm not started: %s", decision.reason)
        self._audit("prewarm.skipped", {"day": decision.day, "reason": decision.reason})
        return decision

    async def run_selftest(self) -> dict | None:
        try:
            result = self.core.nightly_selftest()
        except Exception:  # noqa: BLE001 - a scheduler job must never take the loop down
            log.exception("nightly self-test failed to run")
            return None
        self.update_reminders()
        return result

    async def run_prune(self) -> None:
        try:
            self.history.prune()
        except Exception:  # noqa: BLE001
            log.exception("history pruning failed")

    async def run_reminders(self) -> None:
        self.update_reminders()

    def update_reminders(self) -> None:
        try:
            reminders = maintenance_reminders(self.history.counters(),
                                              self.history.get_setting("selftest.last"),
                                              self.wall(), self.clinic,
                                              self.history.get_setting(BASELINE_KEY))
        except Exception:  # noqa: BLE001
            log.exception("maintenance reminders failed")
            return
        self.core.set_reminders(reminders)

    def next_runs(self) -> dict:
        """When the weekday pre-warm and the nightly self-test run next (local ISO times), or
        ``None`` for a job that is not planned."""
        out = {"prewarm": None, "selftest": None}
        if self.scheduler is None:
            return out
        for job_id in out:
            job = self.scheduler.get_job(job_id)
            when = getattr(job, "next_run_time", None) if job is not None else None
            out[job_id] = when.astimezone(self.tz).isoformat(timespec="minutes") if when else None
        return out

    def reset_maintenance(self, code: str) -> dict:
        """"Service done" for one reminder: its count starts again from today's counters."""
        if code not in RESETTABLE:
            raise ValueError(code)
        baseline = self.history.get_setting(BASELINE_KEY)
        baseline = dict(baseline) if isinstance(baseline, dict) else {}
        counters = self.history.counters()
        baseline[code] = counters[code]
        self.history.set_setting(BASELINE_KEY, baseline)
        self.update_reminders()
        return {"code": code, "at_count": counters[code]}

    def _audit(self, action: str, details: dict) -> None:
        try:
            self.history.audit(at=self.wall(), role="system", action=action, details=details)
        except Exception:  # noqa: BLE001
            log.exception("audit entry failed")
