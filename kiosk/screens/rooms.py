"""The Rooms screen: every unit on the clinic's MQTT broker as a tile, alarms first.

Reached from Home in the clinic profile when ``/etc/lumbarest/bridge.toml`` (or
``LUMBAREST_BRIDGE_CONFIG``) names a broker, so one panel at the front desk can serve as the clinic's board (docs/fleet.md).
It only reads: the tiles come from the retained ``state`` and ``availability`` messages through
:class:`bridge.fleet.FleetWatcher`; nothing on this screen sends anything to any unit.

Tiles with an alarm come first (high, medium, low) in their IEC 60601-1-8 colours and flash
rates, the same as the alarm overlay; a unit whose bridge or appliance is gone is grey and says
so, with its last known state.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from kivy.clock import Clock
from kivy.uix.gridlayout import GridLayout

from bridge import config as bridge_config
from bridge.fleet import FleetWatcher, UnitRow
from kiosk import logic
from kiosk.i18n import N_, _
from kiosk.screens.base import KScreen
from kiosk.widgets import MUTED, PANEL, TEXT, Panel, label, scroll

OFFLINE_BG = (0.22, 0.24, 0.28, 1)
STATE_WORDS = {
    "idle": N_("Free"),
    "running": N_("In session"),
    "paused": N_("Paused"),
    "done": N_("Session finished"),
    "stopped": N_("Session stopped"),
    "fault": N_("Session ended by a fault"),
    "interrupted": N_("Session interrupted"),
}


def board_config(path: Path | None = None) -> bridge_config.BridgeConfig | None:
    """The broker the board reads, or None when none is configured (then there is no Rooms
    screen). A file that names a broker but is invalid also gives None: the kiosk must come up
    whatever is in that file; ``lumbarest-bridge --check-config`` names the problem."""
    path = path or Path(os.environ.get("LUMBAREST_BRIDGE_CONFIG") or bridge_config.CONFIG_FILE)
    try:
        return bridge_config.load(path)
    except bridge_config.BridgeConfigError:
        return None


def tile_model(row: UnitRow, t: float) -> dict:
    """What one tile shows: background, text colour and its lines (pure, for tests)."""
    if row.online is False:
        background, text = OFFLINE_BG, MUTED
    elif row.alarm in ("high", "medium", "low"):
        style = logic.alarm_style(row.alarm)
        background = style.background if logic.flash_lit(row.alarm, t) else style.dim_background
        text = style.text
    else:
        background, text = PANEL, TEXT
    state = _(STATE_WORDS.get(row.state, row.state))
    if row.state in ("running", "paused") and row.remaining_s is not None:
        state += " \u00b7 " + _("{t} left").format(t=logic.fmt_mmss(row.remaining_s))
    alarms = [a for a in row.alarms if a.get("priority") in ("high", "medium", "low")]
    if alarms:
        first = alarms[0]
        alarm = f"{_(logic.alarm_style(first.get('priority')).label)}: " \
                f"{_(first.get('title') or '') or first.get('code')}"
        if len(alarms) > 1:
            alarm += " " + _("(+{n} more)").format(n=len(alarms) - 1)
    else:
        alarm = ""
    if row.online is False:
        alarm = _("No connection to this unit: last known state")
    return {"background": background, "text": text, "name": row.name, "state": state,
            "mat": _("Mat {t}").format(t=logic.fmt_temp(row.mat_c)), "alarm": alarm}


class RoomsBoard:
    """The board's subscription to the broker; changes reach the UI thread through the Clock."""

    def __init__(self, config: bridge_config.BridgeConfig, on_change):
        self.config = config
        self.watcher = FleetWatcher(config, on_change=lambda: Clock.schedule_once(
            lambda dt: on_change(), 0))

    def start(self) -> None:
        self.watcher.start()

    def stop(self) -> None:
        self.watcher.stop()

    def rows(self) -> list[UnitRow]:
        return self.watcher.rows()

    def status(self) -> str:
        if self.watcher.error:
            return _("Cannot reach the clinic's message broker: {e}").format(e=self.watcher.error)
        if not self.watcher.connected.is_set():
            return _("Connecting to the clinic's message broker\u2026")
        return ""


class RoomsScreen(KScreen):
    """Every unit as a tile. No PIN (it shows no patient data and sends nothing), and it stays
    up until **Back**: a board at the front desk must not close itself."""

    role = None
    stays_open = True

    def __init__(self, app, **kwargs):
        super().__init__(app, **kwargs)
        #: the broker settings, None without a broker (then there is no way to this screen)
        self.config = board_config() if app.profile == "clinic" else None
        #: the live board while the screen is open (see :meth:`enter`)
        self.board: RoomsBoard | None = None

    @property
    def available(self) -> bool:
        return self.config is not None

    def enter(self):
        # Subscribed only while shown: the broker hands over every unit's retained state at
        # once, so the board is complete within a moment of opening.
        if self.config is not None and self.board is None:
            self.board = RoomsBoard(self.config, self.app.route)
            self.board.start()

    def forget(self):
        if isinstance(self.board, RoomsBoard):
            self.board.stop()
        self.board = None

    def build(self):
        s = self.s
        self.top_bar(_("Rooms"), back=True)
        self.status = label("", s.small, wrap=True, color=(1, 0.85, 0.5, 1), size_hint_y=None,
                            height=30 * s.u)
        self.body.add_widget(self.status)
        self.grid = GridLayout(cols=2 if s.portrait else 3, spacing=s.gap, size_hint_y=None)
        self.grid.bind(minimum_height=self.grid.setter("height"))
        self.body.add_widget(scroll(self.grid))
        self.tiles: list[tuple[Panel, dict]] = []
        self._shown: list | None = None

    def _tile(self, model: dict) -> tuple[Panel, dict]:
        s = self.s
        tile = Panel(orientation="vertical", size_hint_y=None, height=150 * s.u,
                     padding=8 * s.u, bg=list(model["background"]))
        labels = {}
        for key, size, lines in (("name", s.normal, 1), ("state", s.small, 2),
                                 ("mat", s.small, 1), ("alarm", s.small, 2)):
            labels[key] = label(model[key], size, wrap=lines > 1, max_lines=lines,
                                ellipsize=True, color=list(model["text"]))
            tile.add_widget(labels[key])
        return tile, labels

    def refresh(self):
        board = self.board
        if board is None:
            return
        # screenshots freeze the flash in its lit phase (t = 0 is lit for every rate)
        t = 0.0 if self.app.freeze_flash is not None else time.monotonic()
        rows = board.rows()
        self.status.text = board.status() or (_("No units on the broker yet.") if not rows else "")
        models = [tile_model(row, t) for row in rows]
        shape = [(m["name"], m["state"], m["mat"], m["alarm"], tuple(m["text"])) for m in models]
        if shape != self._shown:
            self._shown = shape
            self.grid.clear_widgets()
            self.tiles = [self._tile(m) for m in models]
            for tile, _labels in self.tiles:
                self.grid.add_widget(tile)
        for (tile, _labels), model in zip(self.tiles, models):
            tile.bg = list(model["background"])           # the flash, without a rebuild


def configured_unit_id(app) -> str | None:
    """The ``unit_id`` the bridge file sets for this unit (it wins over the appliance's)."""
    rooms = app.screens.get("rooms")
    return rooms.config.unit_id if rooms is not None and rooms.config is not None else None
