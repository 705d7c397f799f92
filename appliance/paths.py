"""Where the appliance keeps its files, by the conventions of a Debian system service.

On the appliance (run by systemd) the paths are fixed: config in ``/etc/lumbarest/``, data in
``/var/lib/lumbarest/``, the socket in ``/run/lumbarest/``. In development the same programs run as
an ordinary user, so the defaults fall back to per-user locations that need no root.
"""

import os
from pathlib import Path

CONFIG_FILE = Path("/etc/lumbarest/appliance.toml")
SYSTEM_DATA_DIR = Path("/var/lib/lumbarest")
SYSTEM_SOCKET = Path("/run/lumbarest/appliance.sock")


def default_socket_path() -> Path:
    """The socket the appliance listens on and every client connects to.

    ``LUMBAREST_SOCKET`` wins; then the system socket when its directory exists (systemd's
    ``RuntimeDirectory=`` creates it); then a per-user runtime path.
    """
    explicit = os.environ.get("LUMBAREST_SOCKET")
    if explicit:
        return Path(explicit)
    if SYSTEM_SOCKET.parent.is_dir() and os.access(SYSTEM_SOCKET.parent, os.W_OK | os.X_OK):
        return SYSTEM_SOCKET
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) / "lumbarest" if runtime else Path(f"/tmp/lumbarest-{os.getuid()}")
    return base / "appliance.sock"


def default_data_dir() -> Path:
    """The directory for the history database: ``STATE_DIRECTORY`` (systemd) or a per-user one."""
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        return Path(state.split(":")[0])
    if SYSTEM_DATA_DIR.is_dir() and os.access(SYSTEM_DATA_DIR, os.W_OK):
        return SYSTEM_DATA_DIR
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "lumbarest"
