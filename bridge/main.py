"""``lumbarest-bridge``: this unit's state and alarms on the clinic's MQTT broker (docs/fleet.md).

A client of the appliance socket like the kiosk, with less authority: it reads the state and
may, when ``allow_remote_stop = true``, ask for ``session.stop`` (or ``prewarm.stop`` /
``tune.stop``) and ``alarm.silence``. Nothing else from the network reaches the appliance.

Threads: the main thread owns the appliance connection and every decision (payloads, the
throttle, the outbox) and does all state and alarm publishing; paho's network thread only
connects, reconnects and reports (connected, PUBACK, commands) through thread-safe hand-offs;
one worker thread runs accepted remote commands on their own short appliance connection.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import queue
import signal
import sys
import threading
import time
import tomllib
from importlib import metadata
from pathlib import Path

import paho.mqtt.client as mqtt

from appliance.client import ApplianceUnavailable, Client, RpcError
from bridge import config as config_module
from bridge.config import BridgeConfig
from bridge.mqtt import command_subscription, connect_error, connect_in_background, make_client
from bridge.outbox import Outbox, Throttle
from bridge.payloads import (OFFLINE, ONLINE, alarm_events, change_key, decide_command,
                             discovery_documents, state_payload)

log = logging.getLogger("lumbarest.bridge")

APPLIANCE_TIMEOUT_S = 3.0     # the appliance pushes at >= 2 Hz: 3 s of silence means it is gone
APPLIANCE_RETRY_S = 1.0
SILENCE_S = 120


def _sw_version() -> str:
    try:
        return metadata.version("lumbarest")
    except metadata.PackageNotFoundError:
        return "unknown"


class Topics:
    """The topics of one unit under the configured prefix."""

    def __init__(self, config: BridgeConfig, unit_id: str):
        self.base = config.topic_base(unit_id)
        self.state = self.base + "state"
        self.alarm = self.base + "alarm"
        self.availability = self.base + "availability"
        self.command = self.base + "cmd"
        self.command_result = self.base + "cmd/result"


class Bridge:
    """One appliance, one broker. :meth:`run` until :meth:`stop`."""

    def __init__(self, config: BridgeConfig, socket_path: Path | None = None, *,
                 monotonic=time.monotonic):
        self.config = config
        self.socket_path = socket_path
        self.monotonic = monotonic
        self.unit_id: str | None = config.unit_id
        self.topics: Topics | None = None
        self.outbox = Outbox(config.outbox_max_events)
        self.throttle = Throttle()
        self.client: mqtt.Client | None = None
        self._stop = threading.Event()
        self._connected = threading.Event()        # set by paho's thread on CONNACK
        self._acked_mids: collections.deque[int] = collections.deque()
        self._mid_to_seq: dict[int, int] = {}
        self._commands: queue.Queue = queue.Queue(maxsize=4)
        self._state: dict | None = None            # the last state from the appliance
        self._previous_alarms: list[dict] | None = None
        self._appliance_up = False
        self._announced: tuple | None = None       # (availability, unit_name) last published
        self._sw_version = _sw_version()
        self._last_connect_error: str | None = None

    # -- life cycle --------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> int:
        if self.unit_id:
            self._start_mqtt()
        worker = threading.Thread(target=self._command_worker, name="bridge-commands",
                                  daemon=True)
        worker.start()
        try:
            while not self._stop.is_set():
                try:
                    self._follow_appliance()
                except (ApplianceUnavailable, RpcError) as exc:   # RpcError: e.g. too many clients
                    if self._appliance_up:
                        log.warning("appliance gone: %s", exc)
                    self._appliance_up = False
                    self._idle(APPLIANCE_RETRY_S)
        finally:
            self._shutdown()
        return 0

    def _follow_appliance(self) -> None:
        with Client(self.socket_path, timeout_s=APPLIANCE_TIMEOUT_S) as appliance:
            appliance.call("subscribe", {"client": "bridge"})
            while not self._stop.is_set():
                message = appliance.receive()
                if message.get("method") == "state" and isinstance(message.get("params"), dict):
                    self._on_state(message["params"])
                self._service()

    def _idle(self, seconds: float) -> None:
        deadline = self.monotonic() + seconds
        while not self._stop.is_set() and self.monotonic() < deadline:
            self._service()
            self._stop.wait(0.1)

    def _shutdown(self) -> None:
        client = self.client
        if client is None:
            return
        if client.is_connected() and self.topics is not None:
            info = client.publish(self.topics.availability, OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(2.0)
            except (RuntimeError, ValueError):
                pass
        client.disconnect()
        client.loop_stop()

    # -- MQTT ----------------------------------------------------------------------------------

    def _start_mqtt(self) -> None:
        assert self.unit_id is not None
        self.topics = Topics(self.config, self.unit_id)
        client = make_client(self.config, f"lumbarest-bridge-{self.unit_id}",
                             will=(self.topics.availability, OFFLINE))
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        self.client = client
        log.info("unit %s: publishing to %s under %s", self.unit_id, self.config.broker.url,
                 self.topics.base)
        connect_in_background(client, self.config)

    # paho's network thread: hand-offs only, no shared decisions.
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("broker refused the connection: %s", reason_code)
            return
        log.info("connected to %s", self.config.broker.url)
        self._last_connect_error = None
        client.subscribe(self.topics.command, options=command_subscription())
        self._connected.set()

    def _on_connect_fail(self, client, userdata) -> None:
        reason = connect_error() or "unknown reason"
        if reason != self._last_connect_error:      # once per new reason, not every retry
            log.warning("cannot connect to %s: %s (retrying with backoff)",
                        self.config.broker.url, reason)
        self._last_connect_error = reason

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if not self._stop.is_set():
            log.warning("lost the broker (%s); reconnecting with backoff", reason_code)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._acked_mids.append(mid)

    def _on_message(self, client, userdata, message) -> None:
        if message.topic != self.topics.command:
            return
        command, request_id, refusal = decide_command(
            message.payload, allowed=self.config.allow_remote_stop, retained=message.retain)
        if refusal is None:
            try:
                self._commands.put_nowait((command, request_id))
                return
            except queue.Full:
                refusal = "Too many commands at once; try again."
        log.warning("remote command %r refused: %s", command, refusal)
        self._publish_result(command, request_id, False, refusal)

    def _publish_result(self, command, request_id, ok: bool, message: str) -> None:
        payload = {"command": command, "id": request_id, "ok": ok, "message": message,
                   "unit_id": self.unit_id}
        self.client.publish(self.topics.command_result, json.dumps(payload), qos=1)

    # -- the main thread's decisions -------------------------------------------------------------

    def _on_state(self, state: dict) -> None:
        first = self._state is None
        self._state = state
        if self.unit_id is None:
            self.unit_id = config_module.effective_unit_id(self.config, state.get("unit_id"))
            if self.unit_id is None:
                raise SystemExit("lumbarest-bridge: the appliance reports no unit id; "
                                 "set unit_id in the bridge configuration")
            self._start_mqtt()
        gap = not self._appliance_up and not first
        if not self._appliance_up:
            log.info("following the appliance (%s)", "first state" if first else "reconnected")
        self._appliance_up = True
        for event in alarm_events(self._previous_alarms, state.get("alarms") or [],
                                  unit_id=self.unit_id, unit_name=state.get("unit_name"),
                                  wall_time=state.get("wall_time"), gap=gap):
            self.outbox.add(event)
            log.info("alarm %s: %s (%s)", event["event"], event["code"], event["priority"])
        self._previous_alarms = state.get("alarms") or []

    def _service(self) -> None:
        """Everything that needs the broker: called after each state and while idle."""
        client = self.client
        if client is None:
            return
        while self._acked_mids:
            seq = self._mid_to_seq.pop(self._acked_mids.popleft(), None)
            if seq is not None:
                self.outbox.acknowledged(seq)
        if self._connected.is_set():
            self._connected.clear()
            self._announced = None
            self.throttle.reset()
        if not client.is_connected():
            return
        self._announce()
        for event in self.outbox.pending():     # alarms first: they are what matters most
            info = client.publish(self.topics.alarm, json.dumps(event), qos=1)
            if info.rc == mqtt.MQTT_ERR_SUCCESS or info.rc == mqtt.MQTT_ERR_NO_CONN:
                self._mid_to_seq[info.mid] = event["seq"]
                self.outbox.handed(event["seq"])
        if self._state is not None:
            payload = state_payload(self._state, self.unit_id, events_dropped=self.outbox.dropped)
            key = change_key(payload)
            now = self.monotonic()
            if self.throttle.due(key, now):
                client.publish(self.topics.state, json.dumps(payload), qos=1, retain=True)
                self.throttle.sent(key, now)

    def _announce(self) -> None:
        """Availability, and the discovery documents whenever the unit's name is new."""
        availability = ONLINE if self._appliance_up else OFFLINE
        unit_name = (self._state or {}).get("unit_name")
        if self._announced == (availability, unit_name):
            return
        client = self.client
        if self.config.discovery_prefix and unit_name is not None and \
                (self._announced is None or self._announced[1] != unit_name):
            for topic, document in discovery_documents(
                    self.unit_id, unit_name, self.topics.base, self.config.discovery_prefix,
                    self._sw_version).items():
                client.publish(topic, json.dumps(document), qos=1, retain=True)
        client.publish(self.topics.availability, availability, qos=1, retain=True)
        log.info("availability: %s", availability)
        self._announced = (availability, unit_name)

    # -- remote commands (worker thread) ---------------------------------------------------------

    def _command_worker(self) -> None:
        while not self._stop.is_set():
            try:
                command, request_id = self._commands.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                ok, message = self._execute(command)
            except (ApplianceUnavailable, OSError) as exc:
                ok, message = False, f"The appliance is not answering: {exc}"
            except RpcError as exc:
                ok, message = False, exc.message
            log.warning("remote command %r: %s", command, message)
            self._publish_result(command, request_id, ok, message)

    def _execute(self, command: str) -> tuple[bool, str]:
        with Client(self.socket_path, timeout_s=APPLIANCE_TIMEOUT_S) as appliance:
            if command == "silence":
                appliance.call("alarm.silence", {"seconds": SILENCE_S})
                return True, f"Alarm audio paused for {SILENCE_S} s at the unit."
            state = appliance.call("status")
            if (state.get("session") or {}).get("state") in ("running", "paused"):
                appliance.call("session.stop")
                return True, "Session stopped; the heater is off."
            if (state.get("prewarm") or {}).get("active"):
                appliance.call("prewarm.stop")
                return True, "Pre-warm stopped; the heater is off."
            if appliance.call("tune.status").get("active"):
                appliance.call("tune.stop")
                return True, "Autotune stopped; the heater is off."
            return False, "Nothing to stop: no session, pre-warm or autotune is running."


def check_config(path: Path) -> int:
    """systemd's ``ExecCondition=``: 1 skips the unit quietly (no broker configured: the bridge is
    off, as shipped); 255 fails it, so a broken file shows as a failed unit, not as silence."""
    try:
        named = "broker" in tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError:
        print(f"{path} does not exist: the bridge is off.")
        return 1
    except tomllib.TOMLDecodeError as exc:
        print(f"lumbarest-bridge: {path}: not valid TOML: {exc}", file=sys.stderr)
        return 255
    if not named:
        print(f"{path} names no broker: the bridge is off.")
        return 1
    try:
        config_module.load(path)
    except config_module.BridgeConfigError as exc:
        print(f"lumbarest-bridge: {exc}", file=sys.stderr)
        return 255
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lumbarest-bridge",
                                     description="Publish this unit's state and alarms to an MQTT broker.")
    parser.add_argument("--config", default=str(config_module.CONFIG_FILE),
                        help=f"bridge configuration (default {config_module.CONFIG_FILE})")
    parser.add_argument("--socket", help="the appliance socket (default: $LUMBAREST_SOCKET or "
                                         "the system/per-user socket)")
    parser.add_argument("--check-config", action="store_true",
                        help="exit 0 if the file names a broker and is valid, 1 if it names no "
                             "broker (nothing to do), 255 if it is invalid (for ExecCondition=)")
    parser.add_argument("--log-level", default="info",
                        choices=("debug", "info", "warning", "error"))
    args = parser.parse_args(argv)
    fmt = "%(levelname)s %(name)s: %(message)s" if os.environ.get("JOURNAL_STREAM") else \
        "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=getattr(logging, args.log_level.upper()), format=fmt,
                        stream=sys.stderr)
    if args.check_config:
        return check_config(Path(args.config))
    try:
        config = config_module.load(Path(args.config))
    except config_module.BridgeConfigError as exc:
        print(f"lumbarest-bridge: {exc}", file=sys.stderr)
        return 2
    bridge = Bridge(config, Path(args.socket) if args.socket else None)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: bridge.stop())
    return bridge.run()


if __name__ == "__main__":
    sys.exit(main())
