"""Screen brightness: the Pi's backlight through sysfs when it is writable, else a dark overlay.

:meth:`Backlight.apply` returns the opacity the kiosk must give its own dark overlay (0 when the
hardware backlight did the job).
"""

from __future__ import annotations

import glob
from pathlib import Path

DIM_LEVEL = 10  # percent while dimmed after idle time


class Backlight:
    def __init__(self, root: str = "/sys/class/backlight"):
        self.device: Path | None = None
        for path in sorted(glob.glob(f"{root}/*/brightness")):
            p = Path(path)
            try:
                with open(p, "a"):
                    pass
            except OSError:
                continue
            self.device = p.parent
            break

    def _max(self) -> int:
        try:
            return int((self.device / "max_brightness").read_text().strip())
        except (OSError, ValueError, TypeError):
            return 255

    def apply(self, percent: float) -> float:
        """Set the brightness (0-100 %); returns the overlay opacity to use (0..0.9)."""
        percent = max(5.0, min(100.0, float(percent)))
        if self.device is not None:
            try:
                value = max(1, round(self._max() * percent / 100.0))
                (self.device / "brightness").write_text(f"{value}\n")
                return 0.0
            except OSError:
                self.device = None
        return round(0.9 * (1.0 - percent / 100.0), 3)
