"""The alarm overlay: covers every screen while an alarm is active, in the IEC 60601-1-8 colour
and flash rate, with Pause sound and Acknowledge (service PIN on its own pad where needed)."""

from __future__ import annotations

from kivy.uix.boxlayout import BoxLayout

from kiosk import logic
from kiosk.i18n import _
from kiosk.screens.base import now
from kiosk.widgets import PANEL, SYMBOL_FONT, Fill, NumberPad, button, label


class AlarmOverlay(Fill):
    """Covers the whole screen while an alarm is active: IEC 60601-1-8 colour and flash rate."""

    def __init__(self, app, **kwargs):
        super().__init__(**kwargs)
        self.app = app
        self.alarm = None

    def on_touch_down(self, touch):
        super().on_touch_down(touch)
        return True  # modal: nothing underneath is touchable

    def on_touch_up(self, touch):
        super().on_touch_up(touch)
        return True

    def rebuild(self):
        self.clear_widgets()
        s = self.app.sizes
        box = BoxLayout(orientation="vertical", padding=s.gap * 1.5, spacing=s.gap)
        self.add_widget(box)
        self.box = box
        self.priority = label("", s.normal, wrap=False, size_hint_y=None, height=36 * s.u)
        self.title = label("", s.big, wrap=True, max_lines=2, size_hint_y=1.0)
        self.text = label("", s.normal, wrap=True, size_hint_y=0.9)
        self.heater = label("", s.large, wrap=True, size_hint_y=0.55, radius=10 * s.u)
        self.advice = label("", s.normal, wrap=True, size_hint_y=0.9)
        self.extra = label("", s.small, wrap=True, size_hint_y=0.7)
        for w in (self.priority, self.title, self.text, self.heater, self.advice, self.extra):
            box.add_widget(w)
        self.pin_box = BoxLayout(orientation="horizontal", spacing=s.gap, size_hint_y=3.2)
        self.pin_label = label("", s.normal, wrap=True, bg=list(PANEL), radius=10 * s.u)
        self.pin_label.font_name = SYMBOL_FONT
        self.pad = NumberPad(self.alarm_pin_key, ok_text=_("OK"), font=s.large,
                             spacing=s.gap * 0.6)
        self.pin_box.add_widget(self.pin_label)
        self.pin_box.add_widget(self.pad)
        buttons = BoxLayout(size_hint_y=None, height=(90 if s.portrait else 70) * s.u,
                            spacing=s.gap)
        self.audio_btn = button("", self.pause_audio, s.normal, fill=PANEL)
        self.ack_btn = button("", self.acknowledge_alarm, s.normal, fill=PANEL)
        buttons.add_widget(self.audio_btn)
        buttons.add_widget(self.ack_btn)
        self.buttons = buttons
        box.add_widget(buttons)
        self._pin_shown = False

    def show_pin(self, show: bool):
        """PIN mode: the title, the number pad and the buttons; the words come back after."""
        if show == self._pin_shown:
            return
        self._pin_shown = show
        self.box.clear_widgets()
        if show:
            self.title.size_hint_y = 0.5
            parts = (self.title, self.pin_box, self.buttons)
        else:
            self.title.size_hint_y = 1.0
            parts = (self.priority, self.title, self.text, self.heater, self.advice, self.extra,
                     self.buttons)
        for widget in parts:
            self.box.add_widget(widget)

    def refresh(self, alarm: dict, more: int, lit: bool):
        app = self.app
        style = logic.alarm_style(alarm.get("priority"))
        self.bg = list(style.background if lit else style.dim_background)
        for w in (self.priority, self.title, self.text, self.advice, self.extra, self.pin_label):
            w.color = style.text
        lines = logic.alarm_lines(alarm)
        self.priority.text = _(style.label).upper()
        self.title.text = lines["title"]
        self.text.text = lines["text"]
        self.heater.text = lines["heater"]
        self.heater.bg = [0, 0, 0, 0.85] if lines["heater"] else [0, 0, 0, 0]
        self.heater.color = (1, 1, 1, 1)
        self.advice.text = lines["advice"]
        notes = []
        if more:
            notes.append(_("{n} more alarm(s) after this one").format(n=more))
        msg = app.message_for("alarm")
        if msg:
            notes.append(msg)
        elif lines["still_present"] and lines["needs"] != "none":
            notes.append(_("The problem is still there. It can be acknowledged once it is gone."))
        self.extra.text = "\n".join(notes)
        pin_mode = app.alarm_pin_code == alarm.get("code")
        self.show_pin(pin_mode)
        if pin_mode:
            entry = app.pins["service"]
            t = now()
            self.pin_label.text = entry.lock_text(t) or entry.message or (
                _("Service PIN") + "\n" + (entry.masked() or "\u2014"))
            for key, b in self.pad.keys.items():
                b.disabled = entry.locked(t) or (key == "ok" and not entry.can_submit(t))
        paused, left_s = app.audio_paused()
        if paused:
            left = logic.fmt_mmss(left_s)
            self.audio_btn.text = _("Sound paused {t}").format(t=left)
        else:
            self.audio_btn.text = _("Pause sound")
        self.audio_btn.disabled = paused
        needs = lines["needs"]
        self.ack_btn.opacity = 0 if needs == "none" else 1
        self.ack_btn.disabled = needs == "none" or app.busy
        if pin_mode:
            self.ack_btn.text = _("Cancel")
        elif needs == "service":
            self.ack_btn.text = _("Acknowledge (service PIN)")
        else:
            self.ack_btn.text = _("Acknowledge")

    # -- requests -------------------------------------------------------------------------------

    def pause_audio(self):
        app = self.app
        app.audio.pause(now(), [a.get("code") for a in app.alarms()])
        if app.appliance_sounds():
            app.call("alarm.silence", {"seconds": int(logic.AUDIO_PAUSE_S)}, self._silenced,
                     app.failed("alarm"))
        app.route()

    def _silenced(self, state):
        if isinstance(state, dict) and "session" in state:
            self.app.on_state(state, self.app.meta)

    def acknowledge_alarm(self):
        app = self.app
        alarms = app.alarms()
        if not alarms:
            return
        alarm = alarms[0]
        if app.alarm_pin_code is not None:
            app.alarm_pin_code = None  # the button reads Cancel in PIN mode
            app.route()
            return
        if alarm.get("needs") == "service":
            app.alarm_pin_code = alarm.get("code")
            app.pins["service"].take()
            app.route()
            return
        app.busy = True
        app.call("fault.acknowledge", {"code": alarm.get("code")}, self._acked,
                 self._ack_failed)
        app.route()

    def alarm_pin_key(self, key):
        app = self.app
        entry = app.pins["service"]
        if key == "ok":
            if entry.can_submit(now()):
                app.busy = True
                app.call("fault.acknowledge", {"code": app.alarm_pin_code, "pin": entry.take()},
                         self._acked, self._ack_failed)
        else:
            entry.press(key, now())
        app.route()

    def _acked(self, result):
        app = self.app
        app.busy = False
        app.alarm_pin_code = None
        app.route()

    def _ack_failed(self, code, message, data):
        app = self.app
        app.busy = False
        if code == -32003:
            app.pins["service"].rejected(now(), data, message)
        elif code == -32004:
            app.say("alarm", _("The problem is still there. It can be acknowledged once it is "
                               "gone."))
        elif code == 0:
            app.say("alarm", _("The controller did not answer. Please try again."))
        else:
            app.say("alarm", message)
        app.route()
