"""The Rooms screen (clinic profile) against a real Mosquitto holding three units' retained
messages: the tiles, their order and IEC colours, a live change, the offline unit, the unit id on
the Service screen, and no Rooms button without a broker."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from bridge.payloads import state_payload
from kiosk import logic
from tests.kiosk.conftest import HAVE_DISPLAY, NO_DISPLAY, REPO, Harness, kivy_available
from tests.kiosk.kiosk_fake_api import FakeAppliance
from tools.mosquitto import Mosquitto, mosquitto_available

pytestmark = [
    pytest.mark.kiosk,
    pytest.mark.skipif(not kivy_available(), reason="Kivy is not installed"),
    pytest.mark.skipif(not HAVE_DISPLAY, reason=NO_DISPLAY),
    pytest.mark.skipif(not mosquitto_available(), reason="mosquitto is not installed"),
]

BASE = {"mode": "hardware", "wall_time": "2026-11-29T10:00:00+00:00", "setpoint_c": None,
        "mat_c": 22.4, "heating": False, "alarms": [],
        "session": {"state": "idle", "remaining_s": 0.0}}
ALARM_HIGH = {"code": "over_temperature", "priority": "high", "kind": "physiological",
              "title": "The mat is too hot", "present": True, "needs": "ack",
              "since": "2026-11-29T10:00:00+00:00"}
ALARM_MEDIUM = {"code": "rtd_open", "priority": "medium", "kind": "technical",
                "title": "Temperature sensor fault", "present": True, "needs": "ack",
                "since": "2026-11-29T10:00:01+00:00"}


def publish(port: int, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                         protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def unit(unit_id: str, name: str, online: bool, **state) -> list[tuple[str, bytes]]:
    payload = state_payload(dict(BASE, unit_name=name, **state), unit_id)
    return [(f"lumbarest/{unit_id}/state", json.dumps(payload).encode()),
            (f"lumbarest/{unit_id}/availability", b"online" if online else b"offline")]


@pytest.fixture(scope="module")
def clinic_board():
    tmp = Path(tempfile.mkdtemp(prefix="lr-"))
    broker = Mosquitto(tmp / "broker").start()
    publish(broker.port, unit("room-1", "Room 1", True,
                              session={"state": "running", "remaining_s": 754.0},
                              mat_c=37.8, setpoint_c=38.0, heating=True)
            + unit("room-2", "Room 2", True, alarms=[ALARM_HIGH],
                   session={"state": "fault", "remaining_s": 0.0}, mat_c=None)
            + unit("room-3", "Room 3", False))
    config = tmp / "bridge.toml"
    config.write_text(f'broker = "{broker.url}"\nallow_insecure = true\nunit_id = "front-desk"\n')
    server = FakeAppliance(tmp / "a.sock").start()
    old = os.environ.get("LUMBAREST_BRIDGE_CONFIG")
    os.environ["LUMBAREST_BRIDGE_CONFIG"] = str(config)
    try:
        kiosk = Harness(tmp / "a.sock", profile="clinic")
        kiosk.wait(lambda: kiosk.screen == "home", what="the Home screen")
        yield broker, kiosk
        kiosk.close()
    finally:
        if old is None:
            os.environ.pop("LUMBAREST_BRIDGE_CONFIG", None)
        else:
            os.environ["LUMBAREST_BRIDGE_CONFIG"] = old
        server.stop()
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def texts(widget) -> list[str]:
    return [w.text for w in widget.walk() if getattr(w, "text", "")]


def test_rooms_board_shows_every_unit_alarms_first(clinic_board):
    from kiosk.widgets import layout_problems
    broker, kiosk = clinic_board
    app = kiosk.app
    rooms_button = next(w for w in app.screens["home"].walk() if getattr(w, "text", "") == "Rooms")
    kiosk.pump(0.2)
    assert layout_problems(app.root_widget, kiosk.Window.size, "home") == []
    kiosk.tap(rooms_button)
    assert kiosk.screen == "rooms"
    screen = app.screens["rooms"]
    kiosk.wait(lambda: len(screen.tiles) == 3, what="three tiles")
    kiosk.pump(0.2)
    assert layout_problems(app.root_widget, kiosk.Window.size, "rooms") == []
    names = [labels["name"].text for _tile, labels in screen.tiles]
    assert names == ["Room 2", "Room 1", "Room 3"], "the alarm first, then by name"
    red = logic.alarm_style("high")
    assert tuple(screen.tiles[0][0].bg) in (red.background, red.dim_background)
    assert "The mat is too hot" in screen.tiles[0][1]["alarm"].text
    assert "\u2013 \u00b0C" in screen.tiles[0][1]["mat"].text, "no number for an invalid reading"
    assert "12:34 left" in screen.tiles[1][1]["state"].text
    assert "No connection" in screen.tiles[2][1]["alarm"].text
    os.makedirs(REPO / "build" / "screenshots", exist_ok=True)
    app.root_widget.export_to_png(str(REPO / "build" / "screenshots" / "rooms-800x480.png"))

    # A new alarm elsewhere reaches the board by itself, in its colour, ordered by priority.
    publish(broker.port, unit("room-1", "Room 1", True, alarms=[ALARM_MEDIUM],
                              session={"state": "running", "remaining_s": 700.0}))
    kiosk.wait(lambda: [l["name"].text for _t, l in screen.tiles] == ["Room 2", "Room 1", "Room 3"]
               and "Temperature sensor fault" in screen.tiles[1][1]["alarm"].text,
               what="room 1's alarm")
    yellow = logic.alarm_style("medium")
    assert tuple(screen.tiles[1][0].bg) in (yellow.background, yellow.dim_background)

    # The board stays up at the front desk: no staff timeout.
    app.dimmer.last_activity -= 1000
    kiosk.pump(0.3)
    assert kiosk.screen == "rooms"
    app.user_activity()                          # wake the dimmed screen, as a first touch does
    back = next(w for w in screen.walk() if getattr(w, "text", "") == "Back")
    kiosk.tap(back)
    assert kiosk.screen == "home"
    assert screen.board is None, "unsubscribed when the board is left"


def test_service_screen_shows_the_unit_id(clinic_board):
    _broker, kiosk = clinic_board
    kiosk.app.auth["service"] = "7391"           # past the PIN screen
    kiosk.app.open_staff("service")
    kiosk.pump(0.1)
    assert kiosk.screen == "service"
    assert "front-desk" in texts(kiosk.app.screens["service"]), "the bridge file's id wins"
    kiosk.app.leave_staff()


def test_no_rooms_without_a_broker(tmp_path):
    from kiosk.screens.rooms import board_config
    assert board_config(tmp_path / "missing.toml") is None
    (tmp_path / "bridge.toml").write_text("# no broker named\n")
    assert board_config(tmp_path / "bridge.toml") is None
    (tmp_path / "bridge.toml").write_text('broker = "mqtt://127.0.0.1:1883"\n')
    assert board_config(tmp_path / "bridge.toml") is None, "plain TCP needs allow_insecure"
