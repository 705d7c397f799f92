"""Export of the treatment history to a USB drive as CSV (the kiosk writes the files itself).

USB sticks are mounted by the desktop automounter or udisks under ``/media/<user>/<label>``,
``/media/<label>`` or ``/run/media/<user>/<label>``; only real, writable mount points count.
"""

from __future__ import annotations

import csv
import glob
import os
import time
from pathlib import Path

SEARCH = ("/media/*", "/media/*/*", "/run/media/*/*")


def find_usb_drives(patterns=SEARCH) -> list[Path]:
    found = []
    for pattern in patterns:
        for path in sorted(glob.glob(pattern)):
            if os.path.ismount(path) and os.access(path, os.W_OK) and Path(path) not in found:
                found.append(Path(path))
    return found


def _columns(rows: list[dict]) -> list[str]:
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    return columns


def write_csv(path: Path, rows: list[dict]) -> None:
    columns = _columns(rows) or ["none"]
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (v if not isinstance(v, (list, dict)) else repr(v))
                             for k, v in row.items()})
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def export(drive: Path, sessions: list[dict], faults: list[dict], unit: str = "lumbarest",
           stamp: str | None = None) -> list[Path]:
    """Write ``<unit>-sessions-<stamp>.csv`` and ``<unit>-faults-<stamp>.csv`` onto ``drive``."""
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in unit).strip("-") or "lumbarest"
    out = []
    for kind, rows in (("sessions", sessions), ("faults", faults)):
        path = Path(drive) / f"{safe}-{kind}-{stamp}.csv"
        write_csv(path, rows)
        out.append(path)
    os.sync()
    return out
