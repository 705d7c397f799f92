"""The local JSON-RPC 2.0 API over a Unix socket (docs/protocol.md is the contract).

Every client is untrusted: each request is validated strictly (types, ranges, unknown keys) before
anything reaches the :class:`appliance.core.Appliance`; the core validates again and either
succeeds or raises :class:`CommandError` having changed nothing.

Back-pressure: each client has a bounded outgoing queue (256 messages) drained by its own writer
task. :meth:`ApiServer.publish` and every reply only ever ``put_nowait`` into it; when a queue is
full the client is dropped. Nothing the control loop calls ever awaits a client.

Everything runs on the appliance's event loop thread, except PIN hashing (a worker thread, so the
loop is never blocked for the tens of milliseconds scrypt takes).
"""

from __future__ import annotations

import asyncio
import grp
import json
import logging
import math
import os
import re
import socket
import stat
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from appliance import errors
from appliance.errors import CommandError
from appliance.panel_api import panel_methods

log = logging.getLogger("lumbarest.api")

PROTOCOL = 1
MAX_LINE_BYTES = 64 * 1024
QUEUE_SIZE = 256
SOCKET_SNDBUF = 32 * 1024       # small kernel buffer: a client that stops reading shows quickly
LAG_MESSAGES = 4                # a kiosk with this many messages waiting ...
LAG_BYTES = 16 * 1024           # ... or this many bytes unsent does not count as a UI client
MAX_CLIENTS = 32
PUSH_INTERVAL_S = 0.45          # at least 2 Hz when the control loop publishes at 4 Hz
INTERNAL_ERROR = -32603
PIN_CHANGE_KEYS = {"clinic_pin": "clinic", "service_pin": "service"}
CLIENT_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
# Keys of the state that change continuously; they are compared at a coarser resolution.
_COARSE_KEYS = {"elapsed_s", "remaining_s"}
# Keys left out of change detection (still pushed, at least every 0.45 s).
_IGNORED_KEYS = {"wall_time", "sensor"}


# -- parameter validation -----------------------------------------------------------------------

class Param:
    """One named parameter: its JSON type(s), whether it is required, an optional range check."""

    def __init__(self, types: tuple, *, required: bool = False, default: Any = None,
                 minimum: float | None = None, maximum: float | None = None,
                 choices: tuple | None = None, max_len: int | None = None,
                 nullable: bool = False):
        self.types = types
        self.required = required
        self.default = default
        self.minimum = minimum
        self.maximum = maximum
        self.choices = choices
        self.max_len = max_len
        self.nullable = nullable


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               dict: "an object", list: "an array"}


def _type_ok(value: Any, types: tuple) -> bool:
    for t in types:
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool) \
                and math.isfinite(value):
            return True
        if t is bool and isinstance(value, bool):
            return True
        if t in (str, dict, list) and isinstance(value, t):
            return True
    return False


def validate_params(method: str, schema: dict[str, Param], params: Any) -> dict:
    """Return the parameters with defaults filled in, or raise ``-32602`` naming the problem."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise CommandError(errors.INVALID_PARAMS,
                           f"{method}: params must be an object (named parameters)")
    unknown = sorted(set(params) - set(schema))
    if unknown:
        allowed = ", ".join(schema) or "none"
        raise CommandError(errors.INVALID_PARAMS,
                           f"{method}: unknown parameter {unknown[0]!r} (allowed: {allowed})",
                           {"param": unknown[0]})
    out = {}
    for name, spec in schema.items():
        if name not in params:
            if spec.required:
                raise CommandError(errors.INVALID_PARAMS,
                                   f"{method}: missing parameter {name!r}", {"param": name})
            out[name] = spec.default
            continue
        value = params[name]
        if value is None and spec.nullable:
            out[name] = None
            continue
        if not _type_ok(value, spec.types):
            wanted = " or ".join(_TYPE_NAMES[t] for t in spec.types)
            raise CommandError(errors.INVALID_PARAMS,
                               f"{method}: parameter {name!r} must be {wanted}", {"param": name})
        if spec.minimum is not None and value < spec.minimum or \
                spec.maximum is not None and value > spec.maximum:
            raise CommandError(errors.INVALID_PARAMS,
                               f"{method}: parameter {name!r} must be between {spec.minimum} and "
                               f"{spec.maximum}", {"param": name, "min": spec.minimum,
                                                   "max": spec.maximum})
        if spec.choices is not None and value not in spec.choices:
            raise CommandError(errors.INVALID_PARAMS,
                               f"{method}: parameter {name!r} must be one of "
                               f"{', '.join(map(str, spec.choices))}",
                               {"param": name, "allowed": list(spec.choices)})
        if spec.max_len is not None and len(value) > spec.max_len:
            raise CommandError(errors.INVALID_PARAMS,
                               f"{method}: parameter {name!r} is too long (at most "
                               f"{spec.max_len})", {"param": name})
        out[name] = value
    return out


def _no_constants(name: str):
    raise ValueError(f"{name} is not JSON")


def _whole_s(seconds: float) -> int:
    return max(1, math.ceil(seconds - 1e-6))


def _now() -> datetime:
    return datetime.now(timezone.utc).astimezone()


def _coarse(value: Any, key: str | None = None) -> Any:
    """A copy of the state for change detection: no wall time, floats rounded."""
    if isinstance(value, dict):
        return {k: _coarse(v, k) for k, v in value.items() if k not in _IGNORED_KEYS}
    if isinstance(value, list):
        return [_coarse(v) for v in value]
    if isinstance(value, float):
        return round(value) if key in _COARSE_KEYS else round(value, 1)
    return value


# -- one client ---------------------------------------------------------------------------------

class _Client:
    def __init__(self, server: "ApiServer", cid: int, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter):
        self.server = server
        self.id = cid
        self.reader = reader
        self.writer = writer
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_SIZE)
        self.subscribed = False
        self.kind: str | None = None
        self.needs_initial_state = False
        self.closed = False
        self.tokens = float(server.burst)
        self.last_refill = time.monotonic()
        self.writer_task: asyncio.Task | None = None
        self.reader_task: asyncio.Task | None = None

    def lagging(self) -> bool:
        """Whether the client is falling behind: messages are piling up on our side."""
        if self.queue.qsize() >= LAG_MESSAGES:
            return True
        try:
            return self.writer.transport.get_write_buffer_size() >= LAG_BYTES
        except Exception:
            return True

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(float(self.server.burst),
                          self.tokens + (now - self.last_refill) * self.server.rate_per_s)
        self.last_refill = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def send(self, data: bytes) -> bool:
        """Queue one encoded message; drop the client when its queue is full. Never blocks."""
        if self.closed:
            return False
        try:
            self.queue.put_nowait(data)
            return True
        except asyncio.QueueFull:
            log.warning("client %d does not read its messages (queue of %d full); dropping it",
                        self.id, QUEUE_SIZE)
            self.drop()
            return False

    def drop(self, graceful: bool = False) -> None:
        """Disconnect now, without waiting for anything (``graceful``: flush what is buffered)."""
        if self.closed:
            return
        self.closed = True
        if graceful:
            self.writer.transport.close()
        else:
            self.writer.transport.abort()
            task = self.writer_task
            if task is not None and task is not asyncio.current_task() and not task.done():
                task.cancel()           # it may be waiting on an empty queue forever
        self.server._forget(self)

    async def write_loop(self) -> None:
        graceful = False
        try:
            while True:
                data = await self.queue.get()
                if data is None:
                    graceful = True
                    break
                self.writer.write(data)
                await self.writer.drain()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            self.drop(graceful)


# -- the server ---------------------------------------------------------------------------------

class ApiServer:
    """Serves docs/protocol.md for one :class:`appliance.core.Appliance` on a Unix socket."""

    def __init__(self, appliance, socket_path: Path, *, group: str | None = "lumbarest",
                 rate_per_s: float = 200, burst: int = 400, unit_id: str | None = None):
        self.appliance = appliance
        self.unit_id = unit_id          # appliance.unitid: this device's name on the network
        self.socket_path = Path(socket_path)
        self.group = group
        self.rate_per_s = float(rate_per_s)
        self.burst = int(burst)
        self._server: asyncio.AbstractServer | None = None
        self._clients: dict[int, _Client] = {}
        self._next_id = 1
        self._ui_clients = 0
        self._last_coarse: Any = None
        self._last_push = 0.0
        self._last_state: dict | None = None
        self._pin_lock: asyncio.Lock | None = None
        self.scheduler = None   # the clinic scheduler, once started (appliance.panel_api)
        self._methods: dict[str, tuple[dict[str, Param], Callable]] = self._method_table()

    # -- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        path = self.socket_path
        if not path.parent.exists():
            path.parent.mkdir(parents=True, mode=0o750)
        if path.exists() or path.is_symlink():
            if not stat.S_ISSOCK(path.lstat().st_mode):
                raise RuntimeError(f"{path} exists and is not a socket")
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(str(path))
            except OSError:
                path.unlink()           # a stale socket from a process that died
            else:
                raise RuntimeError(f"another appliance process is already listening on {path}")
            finally:
                probe.close()
        old_umask = os.umask(0o117)     # the socket is born 0660: never briefly world-writable
        try:
            self._server = await asyncio.start_unix_server(
                self._on_connect, path=str(path), limit=MAX_LINE_BYTES + 2)
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o660)
        if self.group:
            try:
                os.chown(path, -1, grp.getgrnam(self.group).gr_gid)
            except KeyError:
                pass                    # no such group (development machine)
            except PermissionError as exc:
                log.warning("cannot give %s to group %s: %s", path, self.group, exc)
        self._pin_lock = asyncio.Lock()
        log.info("API listening on %s", path)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        clients = list(self._clients.values())
        tasks = [t for c in clients for t in (c.reader_task, c.writer_task) if t]
        for client in clients:
            client.drop()
        for task in tasks:
            task.cancel()
        current = asyncio.current_task()
        pending = [t for t in tasks if t is not current and not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=2.0)
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            except (asyncio.TimeoutError, Exception):
                pass
            self._server = None
        try:
            self.socket_path.unlink()
        except FileNotFoundError:
            pass

    @property
    def client_count(self) -> int:
        return len(self._clients)

    def _forget(self, client: _Client) -> None:
        if self._clients.pop(client.id, None) is not None:
            self._update_ui_clients()

    def _update_ui_clients(self) -> None:
        # A kiosk counts only while it keeps up with its messages: a hung screen cannot show an
        # alarm, so the core must not believe it is there (see the ui_lost safety rule).
        count = sum(1 for c in self._clients.values()
                    if c.subscribed and c.kind == "kiosk" and not c.lagging())
        if count != self._ui_clients:
            self._ui_clients = count
            try:
                self.appliance.set_ui_clients(count)
            except Exception:
                log.exception("set_ui_clients failed")

    # -- pushing state ---------------------------------------------------------------------

    def _decorate(self, state: dict) -> dict:
        state = dict(state)
        state["protocol"] = PROTOCOL
        state["connection"] = {"clients": len(self._clients),
                               "subscribers": sum(1 for c in self._clients.values()
                                                  if c.subscribed)}
        state.setdefault("ui_clients", self._ui_clients)
        if self.unit_id is not None:
            state["unit_id"] = self.unit_id
        return state

    def publish(self, state: dict) -> None:
        """Called by the control loop after every tick; pushes when the state changed or every
        0.45 s. Never blocks: slow subscribers are dropped."""
        try:
            self._last_state = state
            now = time.monotonic()
            coarse = _coarse(state)
            if coarse == self._last_coarse and now - self._last_push < PUSH_INTERVAL_S:
                return
            self._last_coarse = coarse
            self._last_push = now
            subscribers = [c for c in self._clients.values() if c.subscribed]
            if not subscribers:
                return
            data = self._encode({"jsonrpc": "2.0", "method": "state",
                                 "params": self._decorate(state)})
            for client in subscribers:
                client.send(data)
            self._update_ui_clients()
        except Exception:
            log.exception("publishing the state failed")

    @staticmethod
    def _encode(message: dict) -> bytes:
        return json.dumps(message, separators=(",", ":"), allow_nan=False).encode() + b"\n"

    # -- connections -----------------------------------------------------------------------

    async def _on_connect(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        client = _Client(self, self._next_id, reader, writer)
        self._next_id += 1
        if len(self._clients) >= MAX_CLIENTS:
            # Full: make room by closing the longest-quiet client that is not subscribed, so a
            # heap of idle connections can never lock the kiosk out.
            idle = [c for c in self._clients.values() if not c.subscribed]
            if idle:
                victim = min(idle, key=lambda c: c.last_refill)
                log.warning("%d clients connected: closing idle client %d", MAX_CLIENTS,
                            victim.id)
                victim.drop()
            else:
                log.warning("refusing client: %d subscribers already connected", MAX_CLIENTS)
                try:
                    writer.write(self._encode(self._error(None, errors.TOO_MANY_REQUESTS,
                                                          "too many clients connected")))
                    writer.close()
                except Exception:
                    pass
                return
        try:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_SNDBUF)
            writer.transport.set_write_buffer_limits(high=LAG_BYTES)
        except (OSError, AttributeError):
            pass
        self._clients[client.id] = client
        client.reader_task = asyncio.current_task()
        client.writer_task = asyncio.get_running_loop().create_task(client.write_loop())
        try:
            await self._read_loop(client)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("client %d: unexpected error", client.id)
        finally:
            if not client.closed:
                # Let queued replies go out, then close.
                try:
                    client.queue.put_nowait(None)
                except asyncio.QueueFull:
                    client.drop()
            self._forget(client)

    async def _read_loop(self, client: _Client) -> None:
        reader = client.reader
        while not client.closed:
            try:
                line = await reader.readline()
            except ValueError:          # asyncio's LimitOverrunError, re-raised by readline()
                client.send(self._encode(self._error(
                    None, errors.INVALID_REQUEST,
                    f"line longer than {MAX_LINE_BYTES} bytes; closing the connection")))
                log.warning("client %d sent a line over %d bytes; closing", client.id,
                            MAX_LINE_BYTES)
                return
            except (ConnectionError, OSError):
                return
            if not line:
                return
            if len(line) > MAX_LINE_BYTES + 1:
                client.send(self._encode(self._error(
                    None, errors.INVALID_REQUEST,
                    f"line longer than {MAX_LINE_BYTES} bytes; closing the connection")))
                return
            if not line.strip():
                continue
            reply = await self._handle_line(client, line)
            if reply is not None:
                client.send(self._encode(reply))
            if client.needs_initial_state:
                # A new subscriber gets the current state at once, right after the reply.
                client.needs_initial_state = False
                try:
                    state = self._state()
                except Exception:
                    log.exception("snapshot failed")
                else:
                    client.send(self._encode({"jsonrpc": "2.0", "method": "state",
                                              "params": state}))

    # -- requests --------------------------------------------------------------------------

    @staticmethod
    def _error(rid: Any, code: int, message: str, data: Any = None) -> dict:
        err: dict[str, Any] = {"code": code, "message": message}
        if data is not None:
            err["data"] = data
        return {"jsonrpc": "2.0", "id": rid, "error": err}

    async def _handle_line(self, client: _Client, line: bytes) -> dict | None:
        try:
            message = json.loads(line, parse_constant=_no_constants)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            if not client.allow():
                return self._error(None, errors.TOO_MANY_REQUESTS, "too many requests")
            detail = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            return self._error(None, errors.PARSE_ERROR, f"malformed JSON: {detail}")
        rid = message.get("id") if isinstance(message, dict) else None
        if not (rid is None or isinstance(rid, str)
                or (isinstance(rid, int) and not isinstance(rid, bool))):
            rid = None
        if not client.allow():
            return self._error(rid, errors.TOO_MANY_REQUESTS,
                               f"too many requests (limit {self.rate_per_s:g} per second); "
                               "this one was not executed")
        if isinstance(message, list):
            return self._error(None, errors.INVALID_REQUEST, "batches are not supported")
        if not isinstance(message, dict):
            return self._error(None, errors.INVALID_REQUEST, "a request must be a JSON object")
        problem = self._check_envelope(message)
        if problem:
            return self._error(rid, errors.INVALID_REQUEST, problem)
        is_notification = "id" not in message
        method = message["method"]
        try:
            result = await self._dispatch(client, method, message.get("params"))
        except CommandError as exc:
            if is_notification:
                return None
            return self._error(rid, exc.code, exc.message, exc.data)
        except Exception:
            log.exception("client %d: %s failed", client.id, method)
            if is_notification:
                return None
            return self._error(rid, INTERNAL_ERROR, "internal error (logged by the appliance)")
        if is_notification:
            return None
        return {"jsonrpc": "2.0", "id": rid, "result": result}

    @staticmethod
    def _check_envelope(message: dict) -> str | None:
        if message.get("jsonrpc") != "2.0":
            return '"jsonrpc" must be "2.0"'
        unknown = set(message) - {"jsonrpc", "id", "method", "params"}
        if unknown:
            return f"unknown member {sorted(unknown)[0]!r} in the request"
        if "id" in message:
            rid = message["id"]
            if not (rid is None or isinstance(rid, str)
                    or (isinstance(rid, int) and not isinstance(rid, bool))):
                return '"id" must be a string, an integer or null'
        if not isinstance(message.get("method"), str) or not message["method"]:
            return '"method" must be a non-empty string'
        return None

    async def _dispatch(self, client: _Client, method: str, params: Any) -> Any:
        entry = self._methods.get(method)
        if entry is None:
            raise CommandError(errors.METHOD_NOT_FOUND, f"unknown method {method!r}")
        schema, handler = entry
        args = validate_params(method, schema, params)
        result = handler(client, **args)
        if asyncio.iscoroutine(result):
            result = await result
        return result

    def _method_table(self) -> dict[str, tuple[dict[str, Param], Callable]]:
        page = {"limit": Param((int,), default=50, minimum=1, maximum=500),
                "offset": Param((int,), default=0, minimum=0, maximum=2 ** 31)}
        name = Param((str,), required=True, max_len=64)
        pin = Param((str,), required=True, max_len=16)
        return {
            "status": ({}, self._status),
            "subscribe": ({"client": Param((str,), max_len=32)}, self._subscribe),
            "unsubscribe": ({}, self._unsubscribe),
            "session.start": ({"program": name, "level": Param((str,), max_len=64)},
                              self._session_start),
            "session.pause": ({}, self._simple("pause")),
            "session.resume": ({}, self._simple("resume")),
            "session.stop": ({}, self._simple("stop")),
            "session.extend": ({}, self._simple("extend")),
            "fault.acknowledge": ({"code": Param((str,), max_len=64, nullable=True),
                                   "pin": Param((str,), max_len=16)}, self._acknowledge),
            "history.sessions": (page, self._history_sessions),
            "history.faults": (page, self._history_faults),
            "history.trace": ({"session_id": Param((int,), required=True, minimum=1,
                                                   maximum=2 ** 62)}, self._history_trace),
            "history.audit": (page, self._history_audit),
            "history.counters": ({}, self._history_counters),
            "settings.get": ({}, self._settings_get),
            "settings.set": ({"pin": Param((str,), max_len=16),
                              "changes": Param((dict,), required=True)},
                             self._settings_set),
            "auth.check": ({"role": Param((str,), required=True, choices=("clinic", "service")),
                            "pin": pin}, self._auth_check),
            "system.selftest": ({}, self._selftest),
            "system.hwcheck": ({"pin": Param((str,), max_len=16),
                                "outputs": Param((bool,), default=False)}, self._hwcheck),
            "prewarm.start": ({"minutes": Param((int, float), required=True, minimum=1,
                                                maximum=240),
                               "pin": Param((str,), max_len=16)}, self._prewarm_start),
            "prewarm.stop": ({}, self._prewarm_stop),
            "alarm.silence": ({"seconds": Param((int, float), default=120, minimum=1,
                                                maximum=120)}, self._alarm_silence),
            "tune.start": ({"pin": Param((str,), max_len=16),
                            "test_c": Param((int, float), minimum=30, maximum=45)}, self._tune_start),
            "tune.status": ({}, lambda conn: self.appliance.tune_status()),
            "tune.result": ({}, self._tune_result),
            "tune.apply": ({"pin": Param((str,), max_len=16),
                            "confirm": Param((bool,), required=True)}, self._tune_apply),
            "tune.stop": ({}, self._tune_stop),
            "sim.inject": ({"fault": name}, self._sim_inject),
            "sim.patient": ({"on": Param((bool,), required=True)}, self._sim_patient),
            "sim.clear": ({}, self._sim_clear),
            **panel_methods(self, Param),
        }

    # -- handlers --------------------------------------------------------------------------

    def _state(self) -> dict:
        return self._decorate(self.appliance.snapshot())

    def _status(self, conn: _Client) -> dict:
        state = self._state()
        catalogue = self.appliance.catalogue()
        state["programs"] = catalogue.get("programs", {})
        state["levels"] = catalogue.get("levels", {})
        return state

    def _subscribe(self, conn: _Client, client: str | None) -> dict:
        if client is not None and not CLIENT_NAME.match(client):
            raise CommandError(errors.INVALID_PARAMS,
                               "subscribe: 'client' is 1 to 32 letters, digits, '.', '_' or '-'",
                               {"param": "client"})
        conn.subscribed = True
        conn.kind = client
        conn.needs_initial_state = True
        self._update_ui_clients()
        return {"subscribed": True}

    def _unsubscribe(self, conn: _Client) -> dict:
        conn.subscribed = False
        self._update_ui_clients()
        return {"subscribed": False}

    def _simple(self, name: str) -> Callable:
        def handler(conn: _Client) -> dict:
            getattr(self.appliance, name)()
            return self._state()
        return handler

    def _session_start(self, conn: _Client, program: str, level: str | None) -> dict:
        # The level defaults from the program; the core checks both against its catalogue.
        if level is None:
            level = "off" if program == "traction" else "medium"
        self.appliance.start_session(program, level)
        return self._state()

    async def _identify(self, pin: str, roles: tuple[str, ...], action: str) -> str:
        """The role a PIN belongs to (service before clinic), or ``-32003``."""
        pins = self.appliance.pins
        assert self._pin_lock is not None
        async with self._pin_lock:        # one PIN check at a time: lockout counts stay exact
            now = time.monotonic()
            open_roles = [r for r in roles if pins.begin(r, now)]
            if not open_roles:
                locked = max(pins.locked_s(r, now) for r in roles)
                raise CommandError(errors.PIN_REQUIRED,
                                   f"too many wrong PINs: locked for {_whole_s(locked)} s",
                                   {"locked_s": _whole_s(locked)})
            stored = pins.stored_hashes()
            loop = asyncio.get_running_loop()
            found = None
            for role in open_roles:
                if await loop.run_in_executor(None, pins.matches, pin, stored[role]):
                    found = role
                    break
            now = time.monotonic()
            for role in open_roles:
                pins.record(role, found is not None, now)
        if found is None:
            self._audit("user", "pin.wrong", {"for": action, "roles": open_roles})
            locked = max(pins.locked_s(r, now) for r in roles)
            data = {"locked_s": _whole_s(locked)} if locked else None
            raise CommandError(errors.PIN_REQUIRED,
                               "wrong PIN" + (f": locked for {_whole_s(locked)} s"
                                              if locked else ""), data)
        return found

    async def _require_pin(self, pin: str | None, needs: str, action: str, doing: str) -> str:
        """The role behind a PIN good for ``needs`` (the service PIN also does what the clinic
        PIN does); no PIN at all is ``-32003`` with ``{"needs": needs}``."""
        if pin is None:
            raise CommandError(errors.PIN_REQUIRED, f"{doing} needs the {needs} PIN.",
                               {"needs": needs})
        roles = ("service", "clinic") if needs == "clinic" else ("service",)
        return await self._identify(pin, roles, action)

    def _audit(self, role: str, action: str, details: dict) -> None:
        try:
            self.appliance.history.audit(at=_now(), role=role, action=action, details=details)
        except Exception:
            log.exception("audit entry failed")

    async def _acknowledge(self, conn: _Client, code: str | None, pin: str | None) -> dict:
        role = "user"
        if pin is not None:
            role = await self._identify(pin, ("service", "clinic"), "fault.acknowledge")
        cleared = self.appliance.acknowledge(code, role)
        self._audit(role, "fault.acknowledge", {"code": code, "cleared": list(cleared)})
        return {"cleared": list(cleared)}

    def _history_sessions(self, conn: _Client, limit: int, offset: int) -> dict:
        rows, total = self.appliance.history.sessions(limit, offset)
        return {"sessions": rows, "total": total}

    def _history_faults(self, conn: _Client, limit: int, offset: int) -> dict:
        rows, total = self.appliance.history.faults(limit, offset)
        return {"faults": rows, "total": total}

    def _history_audit(self, conn: _Client, limit: int, offset: int) -> dict:
        rows, total = self.appliance.history.audit_log(limit, offset)
        return {"entries": rows, "total": total}

    def _history_counters(self, conn: _Client) -> dict:
        return self.appliance.history.counters()

    def _history_trace(self, conn: _Client, session_id: int) -> dict:
        history = self.appliance.history
        if history.session(session_id) is None:
            raise CommandError(errors.INVALID_PARAMS, f"no session {session_id}",
                               {"param": "session_id"})
        return {"session_id": session_id, "points": history.trace(session_id)}

    def _settings_get(self, conn: _Client) -> dict:
        settings = dict(self.appliance.settings())
        pins = self.appliance.pins
        settings["pins_default"] = {"clinic": pins.is_default("clinic"),
                                    "service": pins.is_default("service")}
        return settings

    async def _settings_set(self, conn: _Client, pin: str | None, changes: dict) -> dict:
        from appliance.pins import valid_pin_format, MIN_LEN, MAX_LEN
        if not changes:
            raise CommandError(errors.INVALID_PARAMS, "settings.set: 'changes' is empty",
                               {"param": "changes"})
        role = await self._require_pin(pin, "clinic", "settings.set", "Changing settings")
        changes = dict(changes)
        new_pins = {}
        for key, pin_role in PIN_CHANGE_KEYS.items():
            if key in changes:
                value = changes.pop(key)
                if not valid_pin_format(value):
                    raise CommandError(errors.INVALID_PARAMS,
                                       f"settings.set: {key} must be {MIN_LEN} to {MAX_LEN} "
                                       "digits", {"param": key})
                if pin_role == "service" and role != "service":
                    raise CommandError(errors.PIN_REQUIRED,
                                       "changing the service PIN needs the service PIN")
                new_pins[pin_role] = value
        if changes:
            self.appliance.apply_settings(changes)     # validates everything or changes nothing
        for pin_role, value in new_pins.items():
            self.appliance.pins.change(pin_role, value)
        self._audit(role, "settings.set", {"changes": changes,
                                           "pins_changed": sorted(new_pins)})
        return self._settings_get(conn)

    async def _auth_check(self, conn: _Client, role: str, pin: str) -> dict:
        found = await self._identify(pin, (role,), "auth.check")
        return {"ok": True, "role": found}

    def _selftest(self, conn: _Client) -> dict:
        return self.appliance.selftest()

    async def _hwcheck(self, conn: _Client, pin: str | None, outputs: bool) -> dict:
        await self._require_pin(pin, "service", "system.hwcheck", "The hardware check")
        if outputs:
            raise CommandError(errors.NOT_ALLOWED, "The outputs are pulsed only with the appliance "
                               "stopped: systemctl stop lumbarest-appliance, then lumbarest "
                               "hwcheck --outputs.")
        core = self.appliance
        if core.session.active or core.prewarming or core.tune_status().get("active"):
            raise CommandError(errors.NOT_ALLOWED, "The hardware check runs only while the mat "
                               "is idle.", {"state": core.session.state})
        from appliance.hwcheck import run_in_appliance  # noqa: PLC0415

        checks = [c.as_dict() for c in run_in_appliance(core)]
        return {"passed": all(c["ok"] for c in checks), "checks": checks}

    async def _prewarm_start(self, conn: _Client, minutes: float, pin: str | None) -> dict:
        role = await self._require_pin(pin, "clinic", "prewarm.start", "Starting a pre-warm")
        self.appliance.start_prewarm(minutes * 60, by=role)     # the core audits it
        return self._state()

    async def _tune_start(self, conn: _Client, pin: str | None, test_c: float | None) -> dict:
        role = await self._require_pin(pin, "service", "tune.start", "Autotune")
        return self.appliance.start_tune(test_c, by=role)   # the core audits it

    async def _tune_result(self, conn: _Client) -> dict:
        # The model fit takes up to a second on a Pi: never on the control loop's thread.
        return await asyncio.to_thread(self.appliance.tune_result)

    async def _tune_apply(self, conn: _Client, pin: str | None, confirm: bool) -> dict:
        role = await self._require_pin(pin, "service", "tune.apply", "Using an autotune result")
        if not confirm:
            raise CommandError(errors.INVALID_PARAMS, "Nothing was written: confirm must be true.")
        await asyncio.to_thread(self.appliance.tune_result)   # the fit, cached by the tuner
        return self.appliance.apply_tune(by=role)

    def _tune_stop(self, conn: _Client) -> dict:
        # Stopping heat is always allowed: no PIN.
        return {"stopped": self.appliance.stop_tune(by="user")}

    def _prewarm_stop(self, conn: _Client) -> dict:
        # Stopping heat is always allowed: no PIN.
        self.appliance.stop_prewarm(by="user")
        return self._state()

    def _alarm_silence(self, conn: _Client, seconds: float) -> dict:
        # Audio paused only: the alarms stay latched and visible; no PIN (anyone at the unit).
        self.appliance.silence(seconds, by="user")
        return self._state()

    def _require_sim(self) -> None:
        if getattr(self.appliance, "mode", "simulation") != "simulation":
            raise CommandError(errors.METHOD_NOT_FOUND,
                               "sim.* methods exist only in simulation mode")

    def _sim_inject(self, conn: _Client, fault: str) -> dict:
        self._require_sim()
        self.appliance.inject(fault)
        return {"injected": fault}

    def _sim_clear(self, conn: _Client) -> dict:
        self._require_sim()
        clear = getattr(self.appliance, "clear_injected", None)
        if clear is None:
            raise CommandError(errors.METHOD_NOT_FOUND, "sim.clear is not available")
        clear()
        return {"cleared": True}

    def _sim_patient(self, conn: _Client, on: bool) -> dict:
        self._require_sim()
        self.appliance.set_patient(on)
        return {"patient_on": on}

