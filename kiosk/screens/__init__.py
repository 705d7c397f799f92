"""The kiosk's screens, one module each; :data:`SCREENS` is the list the app builds from.

To add a screen: write ``kiosk/screens/<name>.py`` with a :class:`~kiosk.screens.base.KScreen`
subclass (``role`` for its PIN, ``build``/``refresh`` for its layout, ``enter``/``forget`` for
its data, methods for its requests), add it here, and give it a way in (a button calling
``app.open_staff("<name>")``). ``docs/ui.md`` walks through it.
"""

from kiosk.screens.audit import AuditScreen
from kiosk.screens.calibrate import CalibrateScreen
from kiosk.screens.history import HistoryScreen
from kiosk.screens.home import HomeScreen
from kiosk.screens.lost import LostScreen
from kiosk.screens.maintenance import MaintenanceScreen
from kiosk.screens.pin import PinScreen
from kiosk.screens.pins import PinsScreen
from kiosk.screens.rooms import RoomsScreen
from kiosk.screens.schedules import SchedulesScreen
from kiosk.screens.service import ServiceScreen
from kiosk.screens.session import DoneScreen, SessionScreen
from kiosk.screens.settings import KeyboardScreen, SettingsScreen
from kiosk.screens.warm import WarmScreen

#: (name, class) for every screen; the order is the order they are added to the ScreenManager
SCREENS = [
    ("home", HomeScreen), ("session", SessionScreen), ("done", DoneScreen),
    ("lost", LostScreen), ("pin", PinScreen), ("settings", SettingsScreen),
    ("keyboard", KeyboardScreen), ("history", HistoryScreen), ("service", ServiceScreen),
    ("schedules", SchedulesScreen), ("warm", WarmScreen), ("pins", PinsScreen),
    ("calibrate", CalibrateScreen), ("maintenance", MaintenanceScreen), ("audit", AuditScreen),
    ("rooms", RoomsScreen),
]
