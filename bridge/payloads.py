"""What the bridge publishes, as pure functions of the appliance's state (docs/fleet.md).

No I/O here: the state object of docs/protocol.md goes in, JSON-ready dicts come out. Nothing
that could name a patient exists in the state, and nothing beyond the fields below is copied, so
a field added to the protocol later is not published by accident.
"""

from __future__ import annotations

import json
from typing import Any

PRIORITIES = ("high", "medium", "low", "info")
SESSION_STATES = ("idle", "running", "paused", "done", "stopped", "fault", "interrupted")
ALARM_SENSOR_STATES = ("none", *PRIORITIES)
ONLINE, OFFLINE = "online", "offline"
STATE_SCHEMA = 1


def _round(value: Any, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


def highest_priority(alarms: list[dict]) -> str | None:
    """The most urgent priority among the alarms (``high`` … ``info``), or None."""
    ranks = [PRIORITIES.index(a["priority"]) for a in alarms if a.get("priority") in PRIORITIES]
    return PRIORITIES[min(ranks)] if ranks else None


def state_payload(state: dict, unit_id: str, *, events_dropped: int = 0) -> dict:
    """The retained ``state`` message of one unit."""
    session = state.get("session") or {}
    running = session.get("state") in ("running", "paused")
    remaining = session.get("remaining_s") if running else None
    alarms = [{"code": a.get("code"), "priority": a.get("priority"), "kind": a.get("kind"),
               "title": a.get("title"), "present": bool(a.get("present", True)),
               "needs": a.get("needs"), "since": a.get("since")}
              for a in state.get("alarms") or []]
    prewarm = state.get("prewarm") or {}
    payload = {
        "schema": STATE_SCHEMA,
        "unit_id": unit_id,
        "unit_name": state.get("unit_name"),
        "mode": state.get("mode"),
        "session": {
            "state": session.get("state", "idle"),
            "program": session.get("program"),
            "level": session.get("level"),
            "remaining_s": None if remaining is None else max(0, int(round(remaining))),
        },
        "mat_c": _round(state.get("mat_c"), 1),
        "target_c": _round(state.get("setpoint_c"), 1),
        "heating": bool(state.get("heating")),
        "prewarm": bool(prewarm.get("active")),
        "alarm": highest_priority(alarms) or "none",
        "alarms": alarms,
        "audio_paused": bool((state.get("audio") or {}).get("paused")),
        "time": state.get("wall_time"),
    }
    if events_dropped:
        payload["alarm_events_dropped"] = events_dropped
    return payload


def change_key(payload: dict) -> Any:
    """What counts as a change of the state message: everything except its time stamp."""
    return tuple(sorted((k, repr(v)) for k, v in payload.items() if k != "time"))


# -- alarm events --------------------------------------------------------------------------------

def _event(kind: str, alarm: dict, unit_id: str, unit_name: str | None, time: str | None) -> dict:
    return {"event": kind, "code": alarm.get("code"), "priority": alarm.get("priority"),
            "kind": alarm.get("kind"), "title": alarm.get("title"),
            "time": time, "since": alarm.get("since"),
            "unit_id": unit_id, "unit_name": unit_name}


def alarm_events(previous: list[dict] | None, current: list[dict], *, unit_id: str,
                 unit_name: str | None, wall_time: str | None,
                 gap: bool = False) -> list[dict]:
    """The ``alarm`` messages between two consecutive states.

    - ``raised``: a code appears, or its condition comes back (``present`` false → true);
    - ``cleared``: its condition goes away (``present`` true → false), or it disappears while
      still present (information signals, which clear themselves);
    - ``acknowledged``: a latched alarm (``needs`` ack/service) leaves the list.

    ``previous`` None means "nothing known" (the bridge just started): every alarm present is
    reported as raised, with its own ``since``; a subscriber that already saw it can tell by
    ``(unit_id, code, since)``. Delivery is at least once.

    ``gap``: the bridge lost the appliance between the two states (it restarted or hung), so
    it cannot know that an alarm which left the list was acknowledged: it is reported as
    ``cleared`` with ``reason`` saying so, never as ``acknowledged``.
    """
    before = {a.get("code"): a for a in previous or []}
    now = {a.get("code"): a for a in current}
    events = []
    for code, alarm in now.items():
        old = before.get(code)
        present = alarm.get("present", True)
        if old is None:
            events.append(_event("raised", alarm, unit_id, unit_name,
                                 alarm.get("since") or wall_time))
            if not present and alarm.get("needs") != "none":
                events.append(_event("cleared", alarm, unit_id, unit_name, wall_time))
        elif present and not old.get("present", True):
            events.append(_event("raised", alarm, unit_id, unit_name, wall_time))
        elif not present and old.get("present", True):
            events.append(_event("cleared", alarm, unit_id, unit_name, wall_time))
    for code, old in before.items():
        if code in now:
            continue
        if gap:
            events.append(dict(_event("cleared", old, unit_id, unit_name, wall_time),
                               reason="the appliance was out of reach meanwhile"))
            continue
        if old.get("present", True) or old.get("needs") == "none":
            events.append(_event("cleared", old, unit_id, unit_name, wall_time))
        if old.get("needs") in ("ack", "service"):
            events.append(_event("acknowledged", old, unit_id, unit_name, wall_time))
    return events


# -- remote commands ------------------------------------------------------------------------------

REMOTE_COMMANDS = ("stop", "silence")


def decide_command(payload: bytes, *, allowed: bool, retained: bool) -> tuple[str | None, str | None, str | None]:
    """``(command, request_id, refusal)`` for one message on the ``cmd`` topic.

    Only ``stop`` and ``silence`` exist, and only with ``allow_remote_stop``. Heat is never
    started or raised from the network: a session starts at the mat, where the patient is. A
    retained command is refused, or it would stop every future session at every reconnect.
    """
    request_id = None
    try:
        message = json.loads(payload.decode("utf-8")) if len(payload) <= 1024 else None
    except (UnicodeDecodeError, ValueError):
        message = None
    if isinstance(message, str):
        message = {"command": message}
    if not isinstance(message, dict) or not isinstance(message.get("command"), str):
        return None, None, 'Not a command: send {"command": "stop"} or {"command": "silence"}.'
    rid = message.get("id")
    if isinstance(rid, (str, int)) and not isinstance(rid, bool) and len(str(rid)) <= 64:
        request_id = str(rid)
    command = message["command"][:32]
    if retained:
        return command, request_id, "Retained commands are ignored: send the command without retain."
    if command not in REMOTE_COMMANDS:
        return command, request_id, (
            f"{command!r} is not allowed from the network: only stop and silence are. Heat is "
            "started and set only at the mat, where the patient is.")
    if not allowed:
        return command, request_id, ("Remote commands are switched off on this unit "
                                     "(allow_remote_stop = false in bridge.toml).")
    return command, request_id, None


# -- Home Assistant discovery -------------------------------------------------------------------

def discovery_documents(unit_id: str, unit_name: str | None, topic_base: str,
                        discovery_prefix: str, sw_version: str) -> dict[str, dict]:
    """``{topic: document}`` for Home Assistant's MQTT discovery (retained).

    One HA device per unit with six entities that all read the ``state`` topic: mat temperature,
    target, heating, session state, time left, and the alarm (its state is the highest priority
    present, ``none`` without alarms; the alarm list is in its attributes).
    """
    node = f"lumbarest_{unit_id.replace('-', '_')}"
    state_topic = topic_base + "state"
    device = {"identifiers": [node], "name": unit_name or f"Lumbarest {unit_id}",
              "manufacturer": "Lumbarest", "model": "Heated traction mat controller",
              "sw_version": sw_version}
    common = {"state_topic": state_topic, "availability_topic": topic_base + "availability",
              "payload_available": ONLINE, "payload_not_available": OFFLINE,
              "device": device, "qos": 1}
    entities = {
        ("sensor", "mat_temperature"): {
            "name": "Mat temperature", "device_class": "temperature",
            "unit_of_measurement": "°C", "state_class": "measurement",
            "suggested_display_precision": 1,
            # None (sensor fault) renders as "None", which HA shows as unknown, never a number.
            "value_template": "{{ value_json.mat_c }}"},
        ("sensor", "target_temperature"): {
            "name": "Target temperature", "device_class": "temperature",
            "unit_of_measurement": "°C", "suggested_display_precision": 1,
            "value_template": "{{ value_json.target_c }}"},
        ("binary_sensor", "heating"): {
            "name": "Heating", "device_class": "heat", "payload_on": "ON", "payload_off": "OFF",
            "value_template": "{{ 'ON' if value_json.heating else 'OFF' }}"},
        ("sensor", "session_state"): {
            "name": "Session", "device_class": "enum", "options": list(SESSION_STATES),
            "value_template": "{{ value_json.session.state }}"},
        ("sensor", "time_left"): {
            "name": "Time left", "device_class": "duration", "unit_of_measurement": "s",
            "value_template": "{{ value_json.session.remaining_s }}"},
        ("sensor", "alarm"): {
            "name": "Alarm", "device_class": "enum", "options": list(ALARM_SENSOR_STATES),
            "icon": "mdi:alarm-light",
            "value_template": "{{ value_json.alarm }}",
            "json_attributes_topic": state_topic,
            "json_attributes_template": "{{ {'alarms': value_json.alarms} | tojson }}"},
    }
    documents = {}
    for (component, object_id), extra in entities.items():
        doc = dict(common, **extra)
        doc["unique_id"] = f"{node}_{object_id}"
        documents[f"{discovery_prefix}/{component}/{node}/{object_id}/config"] = doc
    return documents
