"""systemd's notify protocol (``sd_notify``): READY=1, WATCHDOG=1, STATUS=, STOPPING=1.

A datagram to ``$NOTIFY_SOCKET``; a no-op when not run under systemd. Written out rather than
depending on a package: it is a dozen lines and the control loop must not block on it.
"""

import os
import socket


class Notifier:
    def __init__(self):
        address = os.environ.get("NOTIFY_SOCKET")
        self._sock = None
        self._address = None
        if address:
            if address.startswith("@"):
                address = "\0" + address[1:]
            self._address = address
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.setblocking(False)
        usec = os.environ.get("WATCHDOG_USEC")
        #: how often systemd wants WATCHDOG=1; None when no watchdog is configured
        self.watchdog_s = int(usec) / 1e6 if usec and usec.isdigit() else None

    def notify(self, message: str) -> None:
        if self._sock is None:
            return
        try:
            self._sock.sendto(message.encode(), self._address)
        except OSError:
            pass  # systemd will notice the silence; the loop must go on
