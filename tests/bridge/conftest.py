"""Fixtures for the MQTT bridge: a real Mosquitto, real appliances in simulation, real bridges.

Everything listens on 127.0.0.1 only, on free ports, with its files in a short temp dir.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from appliance.devrun import stop_process
from tests.api.conftest import REPO, ApplianceProcess
from tools.mosquitto import Mosquitto, make_test_pki, mosquitto_available

needs_mosquitto = pytest.mark.skipif(
    not mosquitto_available(),
    reason="mosquitto and openssl are not installed (tools/setup-host.sh installs them)")


def wait_until(predicate, timeout_s: float, interval_s: float = 0.02):
    """Poll ``predicate`` until it returns something truthy; return it, or None at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval_s)


class BridgeProcess:
    """``lumbarest-bridge --config FILE --socket PATH`` with its log in the directory."""

    def __init__(self, directory: Path, socket: Path, config_text: str):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket = socket
        self.config = directory / "bridge.toml"
        self.config.write_text(config_text)
        self.log = directory / "bridge.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "BridgeProcess":
        env = dict(os.environ, PYTHONPATH=str(REPO))
        env.pop("DISPLAY", None)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bridge.main", "--config", str(self.config),
                 "--socket", str(self.socket)],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


class Subscriber:
    """A test's own MQTT client that records every message (topic, payload, retain, t)."""

    def __init__(self, port: int, topics: list[str], *, client_id: str | None = None,
                 clean_session: bool = True):
        self.messages: list[tuple[str, bytes, bool, float]] = []
        self._cond = threading.Condition()
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"test-{uuid.uuid4().hex[:8]}",
                                  clean_session=clean_session)
        self.topics = topics
        self.subscribed = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 1)
        self.client.connect_async("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        assert self.subscribed.wait(10), "test subscriber did not connect"

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if not reason_code.is_failure:
            client.subscribe([(t, 1) for t in self.topics])

    def _on_message(self, client, userdata, message):
        with self._cond:
            self.messages.append((message.topic, message.payload, bool(message.retain),
                                  time.monotonic()))
            self._cond.notify_all()

    def wait_for(self, predicate, timeout_s: float):
        """The first recorded message (topic, payload, retain, t) matching ``predicate``."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for message in self.messages:
                    if predicate(message):
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def json_on(self, topic: str) -> list[dict]:
        with self._cond:
            return [json.loads(p) for t, p, _r, _t in self.messages if t == topic and p]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained(port: int, topic: str, timeout_s: float = 2.0) -> bytes | None:
    """The retained message on ``topic`` as a new subscriber sees it (None: nothing retained)."""
    sub = Subscriber(port, [topic])
    try:
        found = sub.wait_for(lambda m: m[0] == topic and m[2], timeout_s)
        return found[1] if found else None
    finally:
        sub.close()


def bridge_config(broker_url: str, unit_id: str, **extra) -> str:
    lines = [f'broker = "{broker_url}"', f'unit_id = "{unit_id}"']
    if broker_url.startswith("mqtt://"):
        lines.append("allow_insecure = true")
    for key, value in extra.items():
        lines.append(f"{key} = {json.dumps(value) if not isinstance(value, bool) else str(value).lower()}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def broker(short_tmp):
    if not mosquitto_available():
        pytest.skip("mosquitto and openssl are not installed")
    b = Mosquitto(short_tmp / "broker").start()
    yield b
    b.stop()


@pytest.fixture
def tls_broker(short_tmp):
    if not mosquitto_available():
        pytest.skip("mosquitto and openssl are not installed")
    pki = make_test_pki(short_tmp / "pki")
    b = Mosquitto(short_tmp / "broker", pki=pki).start()
    yield b
    b.stop()


__all__ = ["ApplianceProcess", "BridgeProcess", "Subscriber", "bridge_config", "needs_mosquitto",
           "retained", "wait_until"]
