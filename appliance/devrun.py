"""``make run``: the simulated appliance and the kiosk, as on the unit, on this computer.

Starts ``lumbarest-appliance`` (simulation, real time) and, when there is a display,
``lumbarest-kiosk`` connected to it. Without a display it says so in one sentence and keeps the
appliance running for the command-line client. Ctrl-C stops both; the heater (simulated) goes off.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from appliance.client import ApplianceUnavailable, wait_for_appliance
from appliance.paths import default_socket_path


def stop_process(process: subprocess.Popen, timeout_s: float = 10.0) -> None:
    """SIGTERM (the appliance turns the heater off and records the session), then SIGKILL."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main() -> int:
    bin_dir = Path(sys.executable).parent
    socket_path = default_socket_path()
    appliance = subprocess.Popen([str(bin_dir / "lumbarest-appliance"), "--socket", str(socket_path)])
    try:
        try:
            wait_for_appliance(socket_path, process=appliance)
        except ApplianceUnavailable as exc:
            print(f"{exc} See the messages above.", file=sys.stderr)
            return 1
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            hint = "xvfb-run -a make run" if shutil.which("xvfb-run") else "apt-get install xvfb, then xvfb-run -a make run"
            print(f"No display found, so the kiosk cannot open: use `{hint}` for the screen, or "
                  f"`.venv/bin/lumbarest status` and `.venv/bin/lumbarest start standard` while the "
                  f"simulated appliance keeps running here (Ctrl-C stops it).")
            return appliance.wait()
        kiosk = subprocess.run([str(bin_dir / "lumbarest-kiosk"), "--socket", str(socket_path),
                                "--profile", os.environ.get("LUMBAREST_PROFILE", "clinic")])
        return kiosk.returncode
    except KeyboardInterrupt:
        return 0
    finally:
        stop_process(appliance)


if __name__ == "__main__":
    sys.exit(main())
