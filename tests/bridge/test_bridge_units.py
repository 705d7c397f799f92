"""The bridge's pure parts: configuration, payloads, alarm events, throttle, outbox, commands,
discovery documents (against Home Assistant's rules), the fleet board. No broker, no sockets."""

from __future__ import annotations

import json
import re

import pytest

from appliance.unitid import UNIT_ID, derive_unit_id, load_or_create_unit_id
from bridge.config import BridgeConfigError, effective_unit_id, from_dict, load
from bridge.fleet import FleetView, format_board
from bridge.outbox import Outbox, Throttle
from bridge.payloads import (alarm_events, change_key, decide_command, discovery_documents,
                             state_payload)
from tests.bridge import ha_schema

STATE = {
    "protocol": 1, "mode": "simulation", "unit_name": "Room 2", "unit_id": "lr-0123456789",
    "wall_time": "2026-11-26T10:15:02+00:00", "ready": True,
    "session": {"state": "running", "program": "standard", "level": "high", "phase": "warming",
                "planned_s": 1800, "elapsed_s": 120.5, "remaining_s": 1679.5, "outcome": None,
                "reason": None, "mean_c": None},
    "setpoint_c": 40.0, "mat_c": 31.42, "sensor_ok": True, "heating": True, "duty": 0.87,
    "relay_closed": True, "patient_on": None, "alarms": [], "ui_clients": 1,
    "sensor": {"resistance_ohm": 112.1, "code": 8500, "fault_bits": [], "bad_reads": 0},
    "connection": {"clients": 2}, "prewarm": {"active": False}, "audio": {"paused": False},
}


def alarm(code="rtd_open", priority="medium", present=True, needs="ack",
          since="2026-11-26T10:14:58+00:00"):
    return {"code": code, "priority": priority, "kind": "technical", "title": "Sensor fault",
            "text": "…", "advice": "…", "heater_off": True, "present": present, "needs": needs,
            "since": since}


# -- configuration ---------------------------------------------------------------------------

def test_config_needs_tls_unless_insecure_is_explicit():
    with pytest.raises(BridgeConfigError, match="plain TCP"):
        from_dict({"broker": "mqtt://broker.lan"})
    cfg = from_dict({"broker": "mqtt://broker.lan", "allow_insecure": True})
    assert (cfg.broker.host, cfg.broker.port, cfg.broker.tls) == ("broker.lan", 1883, False)
    cfg = from_dict({"broker": "mqtts://broker.lan"})
    assert (cfg.broker.port, cfg.broker.tls) == (8883, True)
    assert cfg.allow_remote_stop is False, "remote commands are off by default"


@pytest.mark.parametrize("data, message", [
    ({}, "URL"),
    ({"broker": "http://x"}, "not an mqtts"),
    ({"broker": "mqtts://user:pw@x"}, "password_file"),
    ({"broker": "mqtts://x", "colour": "red"}, "unknown setting"),
    ({"broker": "mqtts://x", "password": "p"}, "username"),
    ({"broker": "mqtts://x", "client_cert": "/c.pem"}, "both or neither"),
    ({"broker": "mqtts://x", "unit_id": "Room 3"}, "unit_id"),
    ({"broker": "mqtts://x", "prefix": "clinic/#/"}, "prefix"),
    ({"broker": "mqtts://x", "prefix": "clinic/"}, "prefix"),
    ({"broker": "mqtts://x", "allow_remote_stop": "yes"}, "true or false"),
    ({"broker": "mqtts://x", "ca_file": "/nonexistent/ca.pem"}, "does not exist"),
    ({"broker": "mqtt://x", "allow_insecure": True, "ca_file": "ca.pem"}, "mqtts"),
])
def test_config_problems_are_named(data, message):
    with pytest.raises(BridgeConfigError, match=message):
        from_dict(data)


def test_config_file_with_password_file_and_topics(tmp_path):
    (tmp_path / "pw").write_text("s3cret\n")
    (tmp_path / "bridge.toml").write_text(
        'broker = "mqtts://10.0.0.5:8884"\nusername = "room-2"\npassword_file = "pw"\n'
        'prefix = "clinic-a/{unit_id}"\n')
    cfg = load(tmp_path / "bridge.toml")
    assert cfg.password == "s3cret" and "s3cret" not in repr(cfg)
    assert cfg.topic_base("room-2") == "clinic-a/room-2/"
    assert cfg.fleet_pattern("state") == "clinic-a/+/state"
    assert cfg.split_topic("clinic-a/room-2/state") == ("room-2", "state")
    assert cfg.split_topic("other/room-2/state") is None
    assert effective_unit_id(cfg, "lr-abc") == "lr-abc"
    assert effective_unit_id(from_dict({"broker": "mqtts://x", "unit_id": "room-9"}),
                             "lr-abc") == "room-9"


def test_unit_id_is_made_once_and_kept(tmp_path):
    machine = tmp_path / "machine-id"
    machine.write_text("3d1219c7c4c5404aaa1f6d2a48adfda4\n")
    first = load_or_create_unit_id(tmp_path, machine)
    assert UNIT_ID.match(first) and first.startswith("lr-")
    assert "3d1219c7" not in first, "the machine ID itself is not published"
    machine.write_text("00000000000000000000000000000001\n")   # a new boot's machine ID
    assert load_or_create_unit_id(tmp_path, machine) == first
    assert derive_unit_id("3d1219c7c4c5404aaa1f6d2a48adfda4") == first
    assert derive_unit_id(None) != derive_unit_id(None)          # random without a machine ID


# -- payloads ----------------------------------------------------------------------------------

def test_state_payload_carries_what_the_board_needs_and_nothing_else():
    state = dict(STATE, alarms=[alarm(), alarm("over_temperature", "high")])
    payload = state_payload(state, "room-2")
    assert payload["unit_id"] == "room-2" and payload["unit_name"] == "Room 2"
    assert payload["session"] == {"state": "running", "program": "standard", "level": "high",
                                  "remaining_s": 1680}
    assert (payload["mat_c"], payload["target_c"], payload["heating"]) == (31.4, 40.0, True)
    assert payload["alarm"] == "high"
    assert [a["code"] for a in payload["alarms"]] == ["rtd_open", "over_temperature"]
    assert not {"sensor", "connection", "duty", "patient_on", "ui_clients"} & set(payload)
    json.dumps(payload)
    idle = state_payload(dict(STATE, session={"state": "idle", "remaining_s": 0.0},
                              mat_c=None, setpoint_c=None, heating=False), "room-2")
    assert idle["session"]["remaining_s"] is None and idle["mat_c"] is None
    assert idle["alarm"] == "none"


def test_change_key_ignores_only_the_time():
    a = state_payload(STATE, "u")
    b = state_payload(dict(STATE, wall_time="2026-11-26T10:15:03+00:00"), "u")
    c = state_payload(dict(STATE, mat_c=31.6), "u")
    assert change_key(a) == change_key(b) != change_key(c)


def test_alarm_events_raised_cleared_acknowledged():
    kw = dict(unit_id="room-2", unit_name="Room 2", wall_time="T1")
    raised = alarm_events([], [alarm()], **kw)
    assert [(e["event"], e["code"], e["priority"]) for e in raised] == [("raised", "rtd_open", "medium")]
    assert raised[0]["time"] == "2026-11-26T10:14:58+00:00" and raised[0]["unit_id"] == "room-2"
    assert alarm_events([alarm()], [alarm()], **kw) == []
    cleared = alarm_events([alarm()], [alarm(present=False)], **kw)
    assert [e["event"] for e in cleared] == ["cleared"] and cleared[0]["time"] == "T1"
    acked = alarm_events([alarm(present=False)], [], **kw)
    assert [e["event"] for e in acked] == ["acknowledged"]
    again = alarm_events([alarm(present=False)], [alarm()], **kw)
    assert [e["event"] for e in again] == ["raised"]
    # Came and went between two states: both are told.
    assert [e["event"] for e in alarm_events([], [alarm(present=False)], **kw)] == ["raised", "cleared"]
    # Information signals clear themselves: no acknowledgement.
    info = alarm("session_done", "info", present=False, needs="none", since=None)
    assert [e["event"] for e in alarm_events([], [info], **kw)] == ["raised"]
    assert [e["event"] for e in alarm_events([info], [], **kw)] == ["cleared"]
    # A bridge that just started reports what is there.
    assert [e["event"] for e in alarm_events(None, [alarm()], **kw)] == ["raised"]
    # After losing the appliance nobody can say the alarm was acknowledged.
    gone = alarm_events([alarm(present=False)], [], gap=True, **kw)
    assert [e["event"] for e in gone] == ["cleared"] and "out of reach" in gone[0]["reason"]


# -- throttle and outbox -----------------------------------------------------------------------

def test_throttle_publishes_changes_at_most_twice_a_second_and_a_heartbeat():
    t = Throttle(min_interval_s=0.5, heartbeat_s=30)
    assert t.due("a", 0.0)
    t.sent("a", 0.0)
    assert not t.due("a", 0.2)
    assert not t.due("b", 0.3), "a change within 0.5 s waits"
    assert t.due("b", 0.5), "... and goes out at 0.5 s"
    t.sent("b", 0.5)
    assert not t.due("b", 30.4)
    assert t.due("b", 30.5), "heartbeat"
    t.reset()
    assert t.due("b", 30.6), "after a reconnect at once"


def test_outbox_is_bounded_drops_oldest_pending_and_keeps_in_flight():
    box = Outbox(max_events=3)
    e1 = box.add({"code": "a"})
    box.handed(e1["seq"])
    for code in "bcd":
        box.add({"code": code})
    assert len(box) == 3 and box.dropped == 1
    assert [e["code"] for e in box.pending()] == ["c", "d"], "b (oldest pending) dropped, a in flight"
    box.acknowledged(e1["seq"])
    assert box.in_flight == 0 and len(box) == 2
    seqs = [e["seq"] for e in box.pending()]
    assert seqs == sorted(seqs) and len(set(seqs)) == 2


def test_outbox_keeps_every_event_within_the_bound():
    box = Outbox(max_events=1000)
    for i in range(1000):
        box.add({"code": f"c{i}"})
    assert box.dropped == 0 and [e["code"] for e in box.pending()][:2] == ["c0", "c1"]


# -- remote commands -----------------------------------------------------------------------------

@pytest.mark.parametrize("payload, allowed, retained, command, refused", [
    (b'{"command": "stop", "id": "r1"}', True, False, "stop", None),
    (b'"silence"', True, False, "silence", None),
    (b'{"command": "stop"}', False, False, "stop", "switched off"),
    (b'{"command": "start", "program": "standard"}', True, False, "start", "not allowed"),
    (b'{"command": "settings.set"}', True, False, "settings.set", "not allowed"),
    (b'{"command": "stop"}', True, True, "stop", "Retained"),
    (b'not json', True, False, None, "Not a command"),
    (b'{"command": "stop", "pad": "' + b"x" * 2000 + b'"}', True, False, None, "Not a command"),
])
def test_only_stop_and_silence_pass(payload, allowed, retained, command, refused):
    got_command, _rid, refusal = decide_command(payload, allowed=allowed, retained=retained)
    assert got_command == command
    assert (refusal is None) if refused is None else (refused in refusal)


# -- Home Assistant discovery ------------------------------------------------------------------

def test_discovery_documents_follow_home_assistant_rules():
    docs = discovery_documents("room-2", "Room 2", "lumbarest/room-2/", "homeassistant", "0.1.0")
    kinds = {(t.split("/")[1], t.split("/")[3]) for t in docs}
    assert kinds == {("sensor", "mat_temperature"), ("sensor", "target_temperature"),
                     ("binary_sensor", "heating"), ("sensor", "session_state"),
                     ("sensor", "time_left"), ("sensor", "alarm")}
    for topic, doc in docs.items():
        assert ha_schema.validate(topic, doc) == [], topic
    assert len({d["unique_id"] for d in docs.values()}) == len(docs)
    # Every template reads a field that the state message has.
    payload = state_payload(dict(STATE, alarms=[alarm()]), "room-2")
    for doc in docs.values():
        for template in (doc["value_template"], doc.get("json_attributes_template", "")):
            for path in re.findall(r"value_json\.([a-z_.]+)", template):
                node = payload
                for part in path.split("."):
                    assert isinstance(node, dict) and part in node, path
                    node = node[part]


@pytest.mark.parametrize("mutate, problem", [
    (lambda d: d.update(unit_of_measurement="C"), "unit_of_measurement"),
    (lambda d: d.update(device_class="hotness"), "device_class"),
    (lambda d: d.update(options=["a"]), "options"),
    (lambda d: d.pop("state_topic"), "state_topic"),
    (lambda d: d.update(state_topic="lumbarest/+/state"), "state_topic"),
    (lambda d: d.update(colour="red"), "colour"),
    (lambda d: d.pop("unique_id"), "unique_id"),
])
def test_the_schema_check_can_fail(mutate, problem):
    docs = discovery_documents("room-2", "Room 2", "lumbarest/room-2/", "homeassistant", "0.1.0")
    topic = "homeassistant/sensor/lumbarest_room_2/mat_temperature/config"
    doc = dict(docs[topic])
    mutate(doc)
    assert any(problem in p for p in ha_schema.validate(topic, doc))


def test_enum_sensor_rules():
    topic = "homeassistant/sensor/n/alarm/config"
    doc = {"state_topic": "a/b", "device_class": "enum", "options": ["none", "high"],
           "unit_of_measurement": "s"}
    assert any("enum" in p for p in ha_schema.validate(topic, doc))
    doc = {"state_topic": "a/b", "device_class": "enum"}
    assert any("options: required" in p for p in ha_schema.validate(topic, doc))


# -- the fleet board ------------------------------------------------------------------------------

def test_fleet_board_puts_alarms_first():
    cfg = from_dict({"broker": "mqtts://x"})
    view = FleetView(cfg)
    for unit, name, alarms in (("a", "Room 1", []), ("b", "Room 2", [alarm()]),
                               ("c", "Room 3", [alarm("over_temperature", "high")])):
        payload = state_payload(dict(STATE, unit_name=name, alarms=alarms), unit)
        assert view.feed(f"lumbarest/{unit}/state", json.dumps(payload).encode())
        assert view.feed(f"lumbarest/{unit}/availability", b"online")
    assert not view.feed("lumbarest/a/availability", b"online"), "no change"
    view.feed("lumbarest/a/availability", b"offline")
    rows = view.rows()
    assert [r.name for r in rows] == ["Room 3", "Room 2", "Room 1"]
    board = format_board(rows).splitlines()
    assert board[0].startswith("! Room 3") and "HIGH over_temperature" in board[0]
    assert "MEDIUM rtd_open" in board[1] and board[2].rstrip().endswith("OFFLINE")
    assert "31.4 °C" in board[2] and "27:60" not in board[2] and "28:00 left" in board[2]
    assert not view.feed("elsewhere/a/state", b"{}")
