"""``lumbarest-appliance``: the dedicated controller process.

It owns the heater. One asyncio loop runs the control loop at a fixed period and serves the API
socket; a watchdog thread turns the heater off if the loop stalls; systemd is told READY=1 after
the start-up self-test and WATCHDOG=1 from every healthy loop. Every way out — SIGTERM, SIGINT,
an exception in the loop — turns the heater off first. After a restart nothing resumes: a session
that was running is recorded as interrupted and the appliance waits, idle.

``--failsafe-off`` only drives the heater and relay pins to their off level and exits: systemd
runs it after the process stopped for any reason (``ExecStopPost=``), even SIGKILL.
"""

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from appliance import config as config_module
from appliance.annunciator import Annunciator
from appliance.core import Appliance
from appliance.history import History
from appliance.paths import CONFIG_FILE, default_data_dir, default_socket_path
from appliance.pins import PinStore
from appliance.sdnotify import Notifier
from appliance.server import ApiServer
from appliance.simclock import ScaledClock
from appliance.unitid import load_or_create_unit_id
from appliance.watchdog import run_watchdog_thread
from appliance.wiring import build_hardware, build_simulated, output_pins, pin_factory_for_hardware
from hw.clock import RealClock
from hw.heater import failsafe_off

log = logging.getLogger("lumbarest")


def _setup_logging(level: str) -> None:
    # Under systemd stderr goes to the journal, which stamps the time itself.
    fmt = "%(levelname)s %(name)s: %(message)s" if os.environ.get("JOURNAL_STREAM") else \
        "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=getattr(logging, level.upper()), format=fmt, stream=sys.stderr)


def load_config(path: str | None) -> config_module.Config:
    """``--config``, else ``/etc/lumbarest/appliance.toml`` if present, else the defaults."""
    if path:
        return config_module.load(Path(path))
    return config_module.load(CONFIG_FILE if CONFIG_FILE.exists() else None)


def run_failsafe_off(config: config_module.Config, pin_factory=None) -> int:
    if config.mode == "simulation" and pin_factory is None:
        print("Simulation mode: there are no heater pins to drive.")
        return 0
    if pin_factory is None:
        try:
            pin_factory = pin_factory_for_hardware()
        except Exception as exc:  # noqa: BLE001 - say what is missing; systemd logs it
            print(f"could not drive the pins off: {exc}", file=sys.stderr)
            return 1
    problems = failsafe_off(output_pins(config), pin_factory=pin_factory)
    for problem in problems:
        print(f"could not drive a pin off: {problem}", file=sys.stderr)
    return 1 if problems else 0


class ApplianceProcess:
    """The imperative shell around :class:`appliance.core.Appliance`."""

    def __init__(self, config: config_module.Config, socket_path: Path, data_dir: Path):
        self.config = config
        self.speed = config.simulation.speed if config.mode == "simulation" else 1.0
        self.clock = ScaledClock(self.speed) if self.speed != 1.0 else RealClock()
        data_dir.mkdir(parents=True, exist_ok=True)
        self.history = History(data_dir / "history.sqlite3")
        self.history.prune()
        devices = (build_simulated(config, self.clock) if config.mode == "simulation"
                   else build_hardware(config))
        self.core = Appliance(config, devices, self.clock, history=self.history,
                              pins=PinStore(self.history))
        self.server = ApiServer(self.core, socket_path, unit_id=load_or_create_unit_id(data_dir))
        self.scheduler = None
        self.panel = None
        self.annunciator = Annunciator()
        self.notifier = Notifier()
        self._stop = asyncio.Event()
        self._watchdog_stop = threading.Event()

    def request_stop(self) -> None:
        self.core.force_off()
        self._stop.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        await self.server.start()
        self._start_clinic(loop)
        run_watchdog_thread(self.core.watchdog, self.core.force_off, self._watchdog_stop)
        period = self.core.period_s / self.speed      # real seconds between ticks
        next_s = time.monotonic()
        next_publish_s = next_s
        ready_sent = False
        try:
            while not self._stop.is_set():
                self.core.tick()
                state = self.core.snapshot()
                if time.monotonic() >= next_publish_s:
                    # sped-up simulation: UIs still get states at the loop's real-time rate
                    next_publish_s = time.monotonic() + self.core.period_s * 0.9
                    self.server.publish(state)
                self._annunciate(state)
                if self.core.ready and not ready_sent:
                    self.notifier.notify(f"READY=1\nSTATUS=Controlling the mat ({self.config.mode})")
                    log.info("ready (%s mode)", self.config.mode)
                    ready_sent = True
                self.notifier.notify("WATCHDOG=1")
                next_s += period
                delay = next_s - time.monotonic()
                if delay < 0:
                    next_s = time.monotonic()  # late: do not try to catch up with a burst
                    delay = 0
                try:
                    await asyncio.wait_for(self._stop.wait(), delay)
                except asyncio.TimeoutError:
                    pass
            log.info("stopping")
            self.notifier.notify("STOPPING=1")
            return 0
        except Exception:  # noqa: BLE001 - whatever broke, the heater goes off first
            self.core.force_off()
            log.exception("control loop failed; heater off")
            self.history.fault_raised(code="internal_error", priority="medium",
                                      at=self.clock.wall(), readings={})
            return 1
        finally:
            self._watchdog_stop.set()
            self.core.shutdown()
            if self.scheduler is not None:
                self.scheduler.shutdown()
            await self.server.close()
            self._release()

    def _start_clinic(self, loop: asyncio.AbstractEventLoop) -> None:
        """The schedules and the panel. Neither is needed for safety: if one cannot start, the
        appliance runs without it (logged)."""
        from appliance.schedule import ClinicScheduler  # noqa: PLC0415

        try:
            self.scheduler = ClinicScheduler(self.core, self.history, wall=self.clock.wall)
            self.scheduler.start()
            self.server.scheduler = self.scheduler
        except Exception:  # noqa: BLE001
            log.exception("clinic schedules unavailable")
            self.scheduler = None
        if not self.config.panel.pins():
            return
        from hw.panel import Panel  # noqa: PLC0415

        rig = self.core.devices.rig
        try:
            self.panel = Panel(self.config.panel, on_press=self.core.panel_press,
                               on_long_press=self.core.panel_long_press,
                               dispatch=loop.call_soon_threadsafe,
                               pin_factory=rig.pin_factory if rig is not None else None)
        except Exception:  # noqa: BLE001
            log.exception("panel controls unavailable")
            self.panel = None

    def _annunciate(self, state: dict) -> None:
        if self.panel is None:
            return
        try:
            self.panel.apply(self.annunciator.update(state, time.monotonic()))
        except Exception:  # noqa: BLE001 - the buzzer must never stop the control loop
            log.exception("panel update failed")

    def _release(self) -> None:
        devices = self.core.devices
        for device in (devices.heater, devices.heartbeat):
            if device is not None:
                device.close()
        if self.panel is not None:
            self.panel.close()
        self.history.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lumbarest-appliance", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help=f"configuration file (default {CONFIG_FILE} if it exists, "
                                         "else built-in defaults: simulation)")
    parser.add_argument("--socket", help="API socket path")
    parser.add_argument("--data-dir", help="directory of the history database")
    parser.add_argument("--failsafe-off", action="store_true",
                        help="drive the heater and relay pins off and exit (for ExecStopPost=)")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    args = parser.parse_args(argv)
    _setup_logging(args.log_level)
    try:
        config = load_config(args.config)
    except config_module.ConfigError as exc:
        print(f"lumbarest-appliance: {exc}", file=sys.stderr)
        return 2
    if args.failsafe_off:
        return run_failsafe_off(config)
    socket_path = Path(args.socket) if args.socket else default_socket_path()
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    process = ApplianceProcess(config, socket_path, data_dir)
    try:
        return asyncio.run(process.run())
    except RuntimeError as exc:  # the socket is taken by another appliance process
        print(f"lumbarest-appliance: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
