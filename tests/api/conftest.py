"""Fixtures: the API server on a fake core (in a background event loop), and the real appliance."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from appliance.client import ApplianceUnavailable, Client
from appliance.devrun import stop_process
from appliance.history import History
from appliance.pins import PinStore
from appliance.server import ApiServer
from tests.api.fakecore import FakeAppliance

REPO = Path(__file__).resolve().parents[2]


class ServerHarness:
    """An ApiServer on a FakeAppliance, served by an event loop in a background thread, with a
    4 Hz ticker calling publish() like appliance.main does."""

    def __init__(self, directory: Path, *, tick_s: float | None = 0.25, mode="simulation",
                 **server_kw):
        self.dir = directory
        self.socket = directory / "run" / "appliance.sock"
        self.history = History(directory / "history.sqlite3")
        self.pins = PinStore(self.history)
        self.core = FakeAppliance(self.history, self.pins, mode=mode)
        self.server = ApiServer(self.core, self.socket, group=None, **server_kw)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.run(self.server.start())
        self._ticker = None
        if tick_s:
            self._ticker = asyncio.run_coroutine_threadsafe(self._tick(tick_s), self.loop)

    async def _tick(self, period):
        while True:
            self.core.tick()
            self.server.publish(self.core.snapshot())
            await asyncio.sleep(period)

    def run(self, coro, timeout=10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call_in_loop(self, fn, *args):
        async def wrapper():
            return fn(*args)
        return self.run(wrapper())

    def client(self, **kw) -> Client:
        return Client(self.socket, **kw)

    def close(self):
        if self._ticker:
            self._ticker.cancel()
        self.run(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.history.close()


@pytest.fixture
def harness(short_tmp):
    h = ServerHarness(short_tmp)
    yield h
    h.close()


# -- the real appliance process ---------------------------------------------------------------

def appliance_available() -> bool:
    return (REPO / "appliance" / "main.py").exists() and (REPO / "appliance" / "core.py").exists()


needs_appliance = pytest.mark.skipif(not appliance_available(),
                                     reason="appliance/core.py and main.py are not there yet")

TEST_CONFIG = """\
[programs]
test = 1

[safety]
selftest_observe_s = 0.5
"""


class ApplianceProcess:
    """``lumbarest-appliance --socket PATH`` in simulation, with its data in a temp dir."""

    def __init__(self, directory: Path, config_text: str = TEST_CONFIG):
        self.dir = directory
        self.socket = directory / "appliance.sock"
        self.data = directory / "data"
        self.data.mkdir(exist_ok=True)
        self.config = directory / "appliance.toml"
        self.config.write_text(config_text)
        self.proc: subprocess.Popen | None = None
        self.log = directory / "appliance.log"

    @property
    def env(self) -> dict:
        env = dict(os.environ)
        env["STATE_DIRECTORY"] = str(self.data)
        env["LUMBAREST_SOCKET"] = str(self.socket)
        env["PYTHONPATH"] = str(REPO)
        env.pop("DISPLAY", None)
        return env

    def start(self, timeout=15.0):
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "appliance.main", "--socket", str(self.socket),
                 "--config", str(self.config)],
                cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"appliance exited with {self.proc.returncode}:\n"
                                   + self.log.read_text()[-3000:])
            try:
                with Client(self.socket, timeout_s=2) as c:
                    if c.call("status").get("ready", True):   # the start-up self-test is done
                        return self
                time.sleep(0.05)
            except (ApplianceUnavailable, OSError):
                time.sleep(0.05)
        raise RuntimeError("appliance did not answer:\n" + self.log.read_text()[-3000:])

    def client(self, **kw) -> Client:
        return Client(self.socket, **kw)

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self):
        if self.proc:
            stop_process(self.proc)


@pytest.fixture
def real_appliance(short_tmp):
    if not appliance_available():
        pytest.skip("appliance/core.py and main.py are not there yet")
    app = ApplianceProcess(short_tmp).start()
    yield app
    app.stop()
