"""The kiosk's link to the appliance: socket I/O on background threads, results handed over.

Two connections through the shared :class:`appliance.client.Client`:

- the *subscription* connection (one reader thread): ``status`` (programs, levels, unit name), then
  ``subscribe {"client": "kiosk"}`` so the appliance counts the kiosk as a UI client, then it reads
  the pushed ``state`` notifications. States arrive at >= 2 Hz, so a read that waits longer than
  ``stale_s`` means the appliance is not answering: the link is reported lost and the thread
  reconnects by itself.
- the *command* connection (one worker thread): the requests the user's touches cause, one at a
  time, each answered through a callback.

Nothing here imports Kivy: ``dispatch`` (in the app: ``Clock.schedule_once``) moves every callback
onto the UI thread.
"""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable

from appliance.client import ApplianceUnavailable, Client, RpcError

Dispatch = Callable[[Callable[[], None]], None]


class ApiLink:
    """Background connection to the appliance.

    :param on_state: ``(state, meta)`` for every state; ``meta`` holds programs/levels/unit_name
        from the last ``status``.
    :param on_connection: ``(connected: bool)`` whenever the link comes up or goes down.
    """

    def __init__(self, path: str | Path, dispatch: Dispatch,
                 on_state: Callable[[dict, dict], None],
                 on_connection: Callable[[bool], None],
                 stale_s: float = 3.0, retry_s: float = 1.0, call_timeout_s: float = 5.0):
        self.path = Path(path)
        self.dispatch = dispatch
        self.on_state = on_state
        self.on_connection = on_connection
        self.stale_s = stale_s
        self.retry_s = retry_s
        self.call_timeout_s = call_timeout_s
        self.meta: dict = {}
        self.connected = False
        self._stop = threading.Event()
        self._commands: queue.Queue = queue.Queue()
        self._sub_client: Client | None = None
        self._threads: list[threading.Thread] = []

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        for target, name in ((self._subscription_loop, "kiosk-subscription"),
                             (self._command_loop, "kiosk-commands")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self._commands.put(None)
        client = self._sub_client
        if client is not None:
            try:
                client.close()
            except OSError:
                pass
        for thread in self._threads:
            thread.join(timeout=2.0)

    # -- commands -------------------------------------------------------------------------------

    def call(self, method: str, params: dict | None = None,
             on_result: Callable[[Any], None] | None = None,
             on_error: Callable[[int, str, Any], None] | None = None) -> None:
        """Queue one request; ``on_result(result)`` or ``on_error(code, message, data)`` follows
        on the UI thread. ``code`` 0 means the appliance could not be reached."""
        self._commands.put((method, params, on_result, on_error))

    def _command_loop(self) -> None:
        client: Client | None = None
        while not self._stop.is_set():
            item = self._commands.get()
            if item is None:
                break
            method, params, on_result, on_error = item
            for attempt in (1, 2):  # a stale connection gets one fresh retry
                try:
                    if client is None:
                        client = Client(self.path, timeout_s=self.call_timeout_s)
                    result = client.call(method, params)
                except RpcError as exc:
                    if on_error:
                        self._post(on_error, exc.code, exc.message, exc.data)
                    break
                except (ApplianceUnavailable, OSError, ValueError) as exc:
                    if client is not None:
                        try:
                            client.close()
                        except OSError:
                            pass
                    client = None
                    if attempt == 2 or not self.connected:
                        if on_error:
                            self._post(on_error, 0, str(exc), None)
                        break
                else:
                    if on_result:
                        self._post(on_result, result)
                    break
        if client is not None:
            try:
                client.close()
            except OSError:
                pass

    # -- subscription ---------------------------------------------------------------------------

    def _subscription_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client = Client(self.path, timeout_s=self.stale_s,
                                on_notification=self._notification)
            except ApplianceUnavailable:
                self._set_connected(False)
                self._stop.wait(self.retry_s)
                continue
            self._sub_client = client
            try:
                status = client.call("status")
                if isinstance(status, dict):
                    self.meta = {k: status.get(k) for k in ("programs", "levels", "unit_name")}
                    self._deliver(status)
                client.call("subscribe", {"client": "kiosk"})
                self._set_connected(True)
                while not self._stop.is_set():
                    client.receive()  # notifications go to _notification
            except (ApplianceUnavailable, RpcError, OSError, ValueError):
                pass
            finally:
                self._sub_client = None
                try:
                    client.close()
                except OSError:
                    pass
            self._set_connected(False)
            self._stop.wait(self.retry_s)

    def _notification(self, method: str, params: Any) -> None:
        if method == "state" and isinstance(params, dict):
            if not self.connected and self.meta:
                self._set_connected(True)
            self._deliver(params)

    def _deliver(self, state: dict) -> None:
        if "unit_name" in state:
            self.meta["unit_name"] = state["unit_name"]
        meta = dict(self.meta)
        self._post(self.on_state, state, meta)

    def _set_connected(self, connected: bool) -> None:
        if connected != self.connected or not connected:
            changed = connected != self.connected
            self.connected = connected
            if changed:
                self._post(self.on_connection, connected)

    def _post(self, fn: Callable, *args) -> None:
        if self._stop.is_set():
            return
        self.dispatch(lambda: fn(*args))


def now() -> float:
    return time.monotonic()
