"""API methods for the clinic panel's maintenance and schedule screens (docs/protocol.md):
``schedule.next``, ``maintenance.status`` and ``maintenance.reset``.

Kept out of :class:`appliance.server.ApiServer` so the server does not grow: the server only
merges :func:`panel_methods` into its method table. They need the clinic scheduler
(``server.scheduler``, set by the appliance process once it started); without it the schedule
is reported as not planned and a reset is refused.
"""

from __future__ import annotations

from typing import Callable

from appliance import errors
from appliance.errors import CommandError
from appliance.schedule import BASELINE_KEY, RESETTABLE, since_service


def panel_methods(server, param) -> dict[str, tuple[dict, Callable]]:
    """Method table entries; ``param`` is the server's :class:`~appliance.server.Param`."""

    def schedule_next(conn) -> dict:
        if server.scheduler is None:
            return {"prewarm": None, "selftest": None}
        return server.scheduler.next_runs()

    def maintenance_status(conn) -> dict:
        core = server.appliance
        if server.scheduler is not None:
            server.scheduler.update_reminders()    # from the counters as they are now
        counters = dict(core.history.counters())
        clinic = core.config.clinic
        return {
            "reminders": [dict(r) for r in core.reminders],
            "counters": {**counters, "faults": core.history.faults(1, 0)[1]},
            "since_service": since_service(counters, core.history.get_setting(BASELINE_KEY)),
            "service_every": {"heater_hours": clinic.service_heater_hours,
                              "relay_cycles": clinic.service_relay_cycles},
        }

    async def maintenance_reset(conn, pin: str | None, code: str) -> dict:
        role = await server._require_pin(pin, "service", "maintenance.reset",
                                         "Resetting a service reminder")
        if server.scheduler is None:
            raise CommandError(errors.NOT_ALLOWED,
                               "The schedules are not running, so the reminder cannot be reset.")
        result = server.scheduler.reset_maintenance(code)
        server._audit(role, "maintenance.reset", result)
        return maintenance_status(conn)

    return {
        "schedule.next": ({}, schedule_next),
        "maintenance.status": ({}, maintenance_status),
        "maintenance.reset": ({"pin": param((str,), max_len=16),
                               "code": param((str,), required=True, choices=RESETTABLE)},
                              maintenance_reset),
    }
