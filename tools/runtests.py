"""`make test`: pytest, under a private Xvfb display when there is no screen.

The kiosk tests need a real X display (Kivy renders through GL); on a headless machine or in CI
this wraps pytest in ``xvfb-run`` so the same command works everywhere.
"""

import os
import shutil
import subprocess
import sys


def main() -> int:
    pytest = [sys.executable, "-m", "pytest", *sys.argv[1:]]
    if os.environ.get("DISPLAY") or not shutil.which("xvfb-run"):
        return subprocess.call(pytest)
    return subprocess.call(["xvfb-run", "-a", "-s", "-screen 0 1280x1280x24", *pytest])


if __name__ == "__main__":
    sys.exit(main())
