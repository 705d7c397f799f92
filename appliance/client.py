"""A small blocking JSON-RPC client for the appliance socket, shared by the CLI and the kiosk.

One JSON object per line over a Unix socket (see ``docs/protocol.md``). Notifications that arrive
while waiting for a response are handed to ``on_notification`` rather than dropped, so one
connection can both subscribe and send commands.
"""

import itertools
import json
import socket
import time
from pathlib import Path
from typing import Any, Callable

from appliance.paths import default_socket_path

MAX_LINE_BYTES = 64 * 1024          # the longest request line the appliance accepts
MAX_REPLY_BYTES = 16 * 1024 * 1024  # replies may be longer (a page of 500 history records)


class ApplianceUnavailable(ConnectionError):
    """The appliance process is not running or not answering."""


class RpcError(Exception):
    """The appliance answered a request with a JSON-RPC error."""

    def __init__(self, code: int, message: str, data: Any = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


class Client:
    """A connection to the appliance.

    :param path: the socket; default :func:`appliance.paths.default_socket_path`.
    :param timeout_s: how long a call may wait for its answer.
    :param on_notification: called with ``(method, params)`` for each notification received.
    """

    def __init__(self, path: str | Path | None = None, timeout_s: float = 5.0,
                 on_notification: Callable[[str, Any], None] | None = None):
        self.path = Path(path) if path else default_socket_path()
        self.on_notification = on_notification
        self._ids = itertools.count(1)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout_s)
        try:
            self._sock.connect(str(self.path))
        except OSError as exc:
            self._sock.close()
            raise ApplianceUnavailable(
                f"The Lumbarest appliance is not running (no answer on {self.path}).") from exc
        self._reader = self._sock.makefile("rb")

    def close(self) -> None:
        try:
            self._reader.close()
        finally:
            self._sock.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def call(self, method: str, params: dict | None = None) -> Any:
        """Send one request and return its ``result``; raise :class:`RpcError` on an error."""
        request_id = next(self._ids)
        message = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        try:
            self._sock.sendall(json.dumps(message).encode() + b"\n")
        except OSError as exc:
            raise ApplianceUnavailable("The connection to the appliance was lost.") from exc
        while True:
            reply = self.receive()
            if reply.get("id") == request_id:
                if "error" in reply:
                    err = reply["error"]
                    raise RpcError(err.get("code", 0), err.get("message", ""), err.get("data"))
                return reply.get("result")

    def receive(self) -> dict:
        """Read the next message; notifications go to ``on_notification`` and are returned too."""
        try:
            line = self._reader.readline(MAX_REPLY_BYTES)
        except (OSError, socket.timeout) as exc:
            raise ApplianceUnavailable("The appliance stopped answering.") from exc
        if not line:
            raise ApplianceUnavailable("The appliance closed the connection.")
        try:
            message = json.loads(line)
        except ValueError as exc:
            raise ApplianceUnavailable("The appliance sent a message that is not JSON.") from exc
        if not isinstance(message, dict):
            raise ApplianceUnavailable("The appliance sent a message that is not an object.")
        if "method" in message and "id" not in message and self.on_notification:
            self.on_notification(message["method"], message.get("params"))
        return message


def wait_for_appliance(path: str | Path | None = None, timeout_s: float = 20.0, *,
                       process=None) -> dict:
    """Wait until the appliance has finished its start-up self-test; return its state.

    :param process: the ``subprocess.Popen`` of the appliance, if we started it: its exit ends
        the wait at once.
    :raises ApplianceUnavailable: not ready within ``timeout_s``, or the process exited.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ApplianceUnavailable(f"The appliance exited with code {process.returncode}.")
        try:
            with Client(path, timeout_s=2.0) as client:
                state = client.call("status")
                if state.get("ready"):
                    return state
        except (ApplianceUnavailable, OSError):
            pass
        time.sleep(0.1)
    raise ApplianceUnavailable(f"The appliance was not ready within {timeout_s:g} s.")

