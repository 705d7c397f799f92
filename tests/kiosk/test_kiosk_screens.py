"""The staff screens' wording and request logic, without a window: maintenance reminders in
both languages from their code and numbers, schedule steps, the calibration's side-by-side
words, the audit lines, and the PINs screen's typed-twice flow."""

from __future__ import annotations

import pytest

from kiosk import i18n
from tests.kiosk.conftest import kivy_available

pytestmark = [pytest.mark.kiosk,
              pytest.mark.skipif(not kivy_available(), reason="Kivy is not installed")]


@pytest.fixture(autouse=True)
def english():
    i18n.set_language("en")
    yield
    i18n.set_language("en")


def test_reminders_are_worded_from_code_and_params_in_both_languages():
    from appliance.config import ClinicConfig
    from appliance.schedule import maintenance_reminders
    from datetime import datetime, timezone
    from kiosk.screens.maintenance import reminder_words
    now = datetime(2026, 11, 26, tzinfo=timezone.utc)
    cfg = ClinicConfig(service_heater_hours=100.0, service_relay_cycles=1000)
    reminders = maintenance_reminders({"heater_hours": 123.4, "relay_cycles": 1500}, None, now,
                                      cfg)
    english = [reminder_words(r) for r in reminders]
    # the kiosk's English is the appliance's English, word for word
    assert english == [(r["title"], r["text"]) for r in reminders]
    i18n.set_language("de")
    german = dict(reminder_words(r) for r in reminders)
    assert german["Wartung fällig: Heizstunden"].startswith("Die Heizung lief 123 h")
    assert "1500-mal" in german["Wartung fällig: Relais"]
    assert "Kein Selbsttest aufgezeichnet" in german
    unknown = {"code": "filter_clean", "title": "Clean the filter", "text": "Every month.",
               "params": {}}
    assert reminder_words(unknown) == ("Clean the filter", "Every month.")
    broken = {"code": "heater_hours", "title": "T", "text": "X", "params": {"hours": 5}}
    assert reminder_words(broken) == ("T", "X")   # missing numbers: the appliance's words


def test_schedule_steps_stay_within_the_day_and_next_runs_read_locally():
    from kiosk.screens.schedules import fmt_next, step_hhmm
    assert step_hhmm("07:30", -15, 0, 1425) == "07:15"
    assert step_hhmm("23:45", 15, 0, 1425) == "23:45"
    assert step_hhmm("00:10", -30, 0, 1410) == "00:00"
    assert fmt_next("2026-11-30T07:10+01:00") == "Mo 30.11. 07:10"
    assert fmt_next(None) == "not planned"
    i18n.set_language("de")
    assert fmt_next("2026-12-01T02:30+01:00") == "Di 01.12. 02:30"


def test_calibration_result_in_plain_words_beside_the_model_in_use():
    from kiosk.screens.calibrate import model_lines
    result = {"proposed": {"model": {"heater_w": 78.2, "sensor_tau_s": 8.44}},
              "current": {"model": {"heater_w": 80.0, "sensor_tau_s": 8.0}}}
    assert model_lines(result) == ["Heater 78 W, was 80 W", "Sensor delay 8.4 s, was 8.0 s"]
    assert model_lines({"proposed": {}}) == []


def test_audit_lines_say_what_and_who():
    from kiosk.screens.audit import audit_row_text
    text = audit_row_text({"at": "2026-11-26T10:12:00+00:00", "role": "service",
                           "action": "maintenance.reset",
                           "details": {"code": "relay_cycles", "at_count": 100412}})
    assert "Service done (service)" in text and "code: relay_cycles" in text
    assert "pin.strange (robot)" in audit_row_text({"action": "pin.strange", "role": "robot"})


class FakeApp:
    """Just what the PINs screen's request logic touches."""

    def __init__(self, auth):
        self.auth = auth
        self.busy = False
        self.calls = []
        self.said = {}

    def staff_pin(self, role):
        return self.auth.get(role) or (self.auth.get("service") if role == "clinic" else None)

    def call(self, method, params, on_result=None, on_error=None):
        self.calls.append((method, params))
        if on_result:
            on_result({})

    def failed(self, where):
        return lambda *a: None

    def route(self):
        pass

    def message_for(self, where):
        return self.said.get(where, "")


def test_a_new_pin_is_sent_only_when_typed_the_same_twice():
    from kiosk.screens.pins import PinsScreen
    app = FakeApp({"clinic": "1234", "service": None})
    screen = PinsScreen(app, name="pins")
    for key in "2580k2581k":
        screen.key("ok" if key == "k" else key)
    assert app.calls == [] and "not the same" in screen.status
    for key in "12k":                   # under 4 digits: OK does nothing
        screen.key("ok" if key == "k" else key)
    assert screen.first is None and screen.digits == "12"
    screen.key("back"), screen.key("back")
    for key in "2580k2580k":
        screen.key("ok" if key == "k" else key)
    assert app.calls == [("settings.set", {"pin": "1234", "changes": {"clinic_pin": "2580"}})]
    assert app.auth["clinic"] == "2580" and "is changed" in screen.status
