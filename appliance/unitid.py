"""The unit id: a short, stable name for this device on the clinic's network (MQTT topics).

It must not change across reboots, yet the image's root is read-only with an empty
``/etc/machine-id``, so every boot gets a new machine ID. The id is therefore made once and kept
in the data directory (``/var/lib/lumbarest/unit-id``, on the data partition). It is derived from
the machine ID where there is one — keyed with an application id, so the machine ID itself, which
systemd asks to keep confidential, never leaves the device — and random otherwise.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

UNIT_ID_FILE = "unit-id"
UNIT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_APP_KEY = b"lumbarest unit id v1"


def derive_unit_id(machine_id: str | None) -> str:
    """``lr-`` and 10 hex digits: an application-specific hash of the machine ID, or random."""
    machine_id = (machine_id or "").strip()
    if re.fullmatch(r"[0-9a-f]{32}", machine_id):
        digest = hmac.new(bytes.fromhex(machine_id), _APP_KEY, hashlib.sha256).hexdigest()
    else:
        digest = secrets.token_hex(16)
    return "lr-" + digest[:10]


def load_or_create_unit_id(data_dir: Path, machine_id_file: Path = Path("/etc/machine-id")) -> str:
    """The id kept in ``data_dir``; made (and written atomically) on the first start."""
    path = data_dir / UNIT_ID_FILE
    try:
        stored = path.read_text().strip()
        if UNIT_ID.match(stored):
            return stored
    except OSError:
        pass
    try:
        machine_id = machine_id_file.read_text()
    except OSError:
        machine_id = None
    unit_id = derive_unit_id(machine_id)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(unit_id + "\n")
        os.replace(tmp, path)
    except OSError:
        pass          # a read-only data dir: the id is still stable while the machine ID is
    return unit_id
