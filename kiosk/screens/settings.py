"""Settings (clinic PIN): heat levels, program minutes, room name, language, volume, brightness,
dimming; saved with ``settings.set``. :class:`KeyboardScreen` is its on-screen letter pad for the
room name (no physical keyboard anywhere)."""

from __future__ import annotations

import copy

from kivy.uix.boxlayout import BoxLayout
from kivy.uix.gridlayout import GridLayout

from kiosk import logic
from kiosk.i18n import _
from kiosk.screens.base import KScreen
from kiosk.widgets import GREEN, PANEL, SYMBOL_FONT, button, label, scroll


def settings_shape(settings) -> tuple:
    """What decides the rows of the screen: a reload with the same shape keeps the scroll."""
    settings = settings or {}
    return (tuple(sorted(settings)), tuple(sorted(settings.get("levels") or {})),
            tuple(sorted(settings.get("programs") or {})))


def get_setting(edit: dict, key: tuple):
    value = edit
    for part in key:
        value = (value or {}).get(part) if isinstance(value, dict) else None
    return value


def setting_changes(saved: dict | None, edit: dict | None) -> dict:
    """The entries of ``edit`` that differ from ``saved`` (one level deep for dicts)."""
    if not saved or edit is None:
        return {}
    changes = {}
    for key, value in edit.items():
        if saved.get(key) != value:
            if isinstance(value, dict):
                changes[key] = {k: v for k, v in value.items()
                                if (saved.get(key) or {}).get(k) != v}
            else:
                changes[key] = value
    return changes


class SettingsScreen(KScreen):
    role = "clinic"

    def __init__(self, app, **kwargs):
        super().__init__(app, **kwargs)
        self.settings: dict | None = None       # as saved on the appliance
        self.settings_edit: dict | None = None  # as shown, with the changes not yet saved

    def build(self):
        s, app = self.s, self.app
        self.save_btn = button(_("Save"), self.save_settings, s.normal, fill=GREEN,
                               size_hint_x=None, width=max(s.target * 1.8, 120 * s.u), wrap=False)
        self.top_bar(_("Settings"), back=True, extra=[self.save_btn])
        self.msg = label("", s.normal, wrap=True, color=(1, 0.85, 0.5, 1), size_hint_y=None,
                         height=34 * s.u)
        self.body.add_widget(self.msg)
        self.nav_row([(_("Schedules"), "schedules"), (_("PINs"), "pins")])
        rows = GridLayout(cols=1, spacing=s.gap, size_hint_y=None)
        rows.bind(minimum_height=rows.setter("height"))
        self.values = {}
        edit = self.settings_edit or {}
        for name, celsius in logic.sorted_levels(edit.get("levels") or {}):
            if celsius is None:
                continue
            rows.add_widget(self.stepper(("levels", name),
                                         _("Heat {level}").format(level=logic.level_label(name))))
        for name, _minutes in logic.sorted_programs(edit.get("programs") or {}):
            rows.add_widget(self.stepper(("programs", name), _("Program {program}").format(
                program=logic.program_label(name))))
        if "unit_name" in edit:
            row = self.row(_("Room or unit name"))
            value = label("", s.normal, wrap=True, max_lines=2, bg=list(PANEL))
            self.values[("unit_name",)] = value
            row.add_widget(value)
            row.add_widget(button(_("Change"), self.open_keyboard, s.normal, size_hint_x=0.45))
            rows.add_widget(row)
        if "language" in edit:
            row = self.row(_("Language"))
            self.lang_buttons = {}
            for code, name in (("en", "English"), ("de", "Deutsch")):
                b = button(name, (lambda c=code: self.edit_setting(("language",), c)), s.normal)
                self.lang_buttons[code] = b
                row.add_widget(b)
            rows.add_widget(row)
        for key, text in (("volume", _("Sound volume")), ("brightness", _("Screen brightness")),
                          ("sleep_min", _("Dim the screen after (minutes)"))):
            if key in edit:
                rows.add_widget(self.stepper((key,), text))
        self.rows = rows
        self.body.add_widget(scroll(rows))

    def row(self, text):
        return self.form_row(text)

    def stepper(self, key, text):
        row, value = self.stepper_row(text, lambda direction: self.step_setting(key, direction))
        self.values[key] = value
        return row

    def refresh(self):
        app = self.app
        edit = self.settings_edit or {}
        for key, widget in self.values.items():
            value = get_setting(edit, key)
            if key[0] == "levels":
                widget.text = logic.fmt_temp(value)
            elif key[0] == "programs":
                widget.text = logic.fmt_minutes(value)
            elif key[0] in ("volume", "brightness"):
                widget.text = f"{int(value or 0)} %"
            elif key[0] == "sleep_min":
                widget.text = _("never") if not value else logic.fmt_minutes(value)
            else:
                widget.text = str(value or logic.DASH)
        for code, b in getattr(self, "lang_buttons", {}).items():
            b.selected = edit.get("language") == code
        self.save_btn.disabled = app.busy or not self.settings_changes()
        default_pin = ((self.settings or {}).get("pins_default") or {}).get("clinic")
        self.msg.text = app.message_for("settings") or (
            _("Loading\u2026") if self.settings is None else
            _("The clinic PIN is still the factory PIN. Change it under PINs.")
            if default_pin else "")

    # -- data and requests ----------------------------------------------------------------------

    def enter(self):
        self.settings = self.settings_edit = None
        self.rebuild()
        self.app.call("settings.get", None, self._settings_loaded, self.app.failed("settings"))

    def forget(self):
        self.settings = self.settings_edit = None

    def _settings_loaded(self, settings):
        old_shape = settings_shape(self.settings_edit)
        self.settings = settings if isinstance(settings, dict) else {}
        self.settings_edit = copy.deepcopy(self.settings)
        if settings_shape(self.settings_edit) != old_shape:
            self.rebuild()  # rows differ; otherwise keep the scroll position
        self.app.route()

    def edit_setting(self, key: tuple, value):
        target = self.settings_edit
        for part in key[:-1]:
            target = target.setdefault(part, {})
        target[key[-1]] = value
        self.app.route()

    def step_setting(self, key: tuple, direction: int):
        edit = self.settings_edit or {}
        value = get_setting(edit, key) or 0
        top = key[0]
        max_c = edit.get("max_setpoint_c") or 45.0
        step, lo, hi = {
            "levels": (0.5, 30.0, max_c),
            "programs": (5, 5, edit.get("max_session_min") or 120),
            "volume": (10, 0, 100),
            "brightness": (10, 10, 100),
            "sleep_min": (1, 1, 120),
        }[top]
        value = round(min(hi, max(lo, value + direction * step)), 1)
        if top != "levels":
            value = int(value)
        self.edit_setting(key, value)

    def settings_changes(self) -> dict:
        return setting_changes(self.settings, self.settings_edit)

    def save_settings(self):
        app = self.app
        changes = self.settings_changes()
        if not changes or app.busy:
            return
        app.busy = True
        app.call("settings.set", {"pin": app.staff_pin("clinic") or "", "changes": changes},
                 self._settings_saved, self._settings_failed)
        app.route()

    def _settings_saved(self, settings):
        app = self.app
        app.busy = False
        if isinstance(settings, dict) and settings:
            self._settings_loaded(settings)
        app.say("settings", _("Saved."))
        app.apply_settings(self.settings or {})
        app.route()

    def _settings_failed(self, code, message, data):
        app = self.app
        if code == -32003:
            app.busy = False
            app.auth["clinic"] = None
            app.say("pin", message or _("Please enter the PIN again."))
            app.open_staff("settings")
            return
        app.failed("settings")(code, message, data)

    def open_keyboard(self):
        keyboard = self.app.screens["keyboard"]
        keyboard.start(str((self.settings_edit or {}).get("unit_name") or ""),
                       lambda name: self.edit_setting(("unit_name",), name), "settings")


class KeyboardScreen(KScreen):
    """An on-screen letter pad for the room name (no physical keyboard anywhere)."""

    role = "clinic"
    KEYS = list("ABCDEFGHIJKLMNOPQRSTUVWXYZ\u00c4\u00d6\u00dc") + list("0123456789") + \
        ["-", ".", "space", "back", "case"]

    def __init__(self, app, **kwargs):
        super().__init__(app, **kwargs)
        self.keyboard_text = ""
        self.keyboard_upper = True
        self.on_accept = None
        self.back_to = "settings"

    def build(self):
        s = self.s
        bar = BoxLayout(size_hint_y=None, height=s.bar, spacing=s.gap)
        self.display = label("", s.large, bg=list(PANEL), wrap=False, halign="left")
        bar.add_widget(self.display)
        bar.add_widget(button(_("Cancel"), self.close_keyboard, s.normal, size_hint_x=0.3,
                              wrap=False))
        bar.add_widget(button(_("OK"), self.accept_keyboard, s.normal, fill=GREEN,
                              size_hint_x=0.25, wrap=False))
        self.body.add_widget(bar)
        cols = 8 if s.portrait else 11
        grid = GridLayout(cols=cols, spacing=s.gap * 0.6)
        self.keys = {}
        for key in self.KEYS:
            text = {"space": "\u2423", "back": "\u2190"}.get(key, key)
            b = button(text, (lambda k=key: self.keyboard_key(k)), s.normal, wrap=False)
            if key in ("space", "back"):
                b.font_name = SYMBOL_FONT
            self.keys[key] = b
            grid.add_widget(b)
        self.body.add_widget(grid)

    def refresh(self):
        self.display.text = self.keyboard_text + "_"
        for key, b in self.keys.items():
            if len(key) == 1 and key.isalpha():
                b.text = key if self.keyboard_upper else key.lower()
        self.keys["case"].text = "abc" if self.keyboard_upper else "ABC"

    def start(self, text: str, on_accept, back_to: str):
        """Show the pad with ``text``; ``on_accept(text)`` on OK, then back to ``back_to``."""
        self.keyboard_text = text
        self.keyboard_upper = not text or text.endswith(" ")
        self.on_accept, self.back_to = on_accept, back_to
        self.app.staff = "keyboard"
        self.app.route()

    def keyboard_key(self, key):
        if key == "case":
            self.keyboard_upper = not self.keyboard_upper
        elif key == "back":
            self.keyboard_text = self.keyboard_text[:-1]
            self.keyboard_upper = not self.keyboard_text
        elif key == "space":
            self.keyboard_text += " "
            self.keyboard_upper = True
        elif len(self.keyboard_text) < 40:
            self.keyboard_text += key if self.keyboard_upper else key.lower()
            self.keyboard_upper = False  # like a phone: capital first letter, then small
        self.app.route()

    def close_keyboard(self):
        self.app.staff = self.back_to
        self.app.route()

    def accept_keyboard(self):
        name = self.keyboard_text.strip()
        if name and self.on_accept is not None:
            self.on_accept(name)
        self.close_keyboard()
