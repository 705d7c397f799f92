"""``lumbarest``: the command-line client of the appliance (docs/protocol.md).

Every command is one or a few JSON-RPC calls through :class:`appliance.client.Client`; the CLI
has no authority of its own. Human output is short; ``--json`` prints the raw result (stable:
it is the protocol's own JSON).

Exit codes: 0 done, 1 the appliance refused (its message on stderr), 2 the appliance is not
running or stopped answering, 64 bad usage (argparse prints the usage).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, Iterator

from appliance.client import ApplianceUnavailable, Client, RpcError

EXIT_REFUSED = 1
EXIT_UNAVAILABLE = 2
PAGE = 500

EXPORT_COLUMNS = ["record", "id", "time", "ended_at", "program", "level", "planned_min",
                  "actual_min", "outcome", "reason", "max_c", "mean_c", "energy_wh", "code",
                  "priority", "readings", "acknowledged_at", "acknowledged_by"]


# -- formatting ---------------------------------------------------------------------------------

def _mmss(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"


def _temp(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} °C"


def format_status(st: dict, show_mode: bool = True) -> str:
    s = st.get("session") or {}
    state = s.get("state", "idle")
    mat = f"mat {_temp(st.get('mat_c'))}"
    lines = []
    if state in ("running", "paused"):
        level = s.get("level")
        setpoint = st.get("setpoint_c")
        heat = f"{level} {setpoint:g} °C" if setpoint is not None else f"{level} (no heat)"
        parts = [mat, f"{_mmss(s.get('remaining_s'))} left"]
        if state == "running":
            parts.append(f"heating {round((st.get('duty') or 0) * 100)} %"
                         if st.get("heating") else "heater off")
        head = "Running" if state == "running" else "Paused"
        if state == "running" and s.get("phase") == "warming":
            head = "Running (warming up)"
        lines.append(f"{head}: {s.get('program')}, {heat} — {', '.join(parts)}")
    elif state in ("done", "stopped", "fault", "interrupted"):
        what = {"done": "Session finished", "stopped": "Session stopped",
                "fault": "Session ended by a fault",
                "interrupted": "Session interrupted"}[state]
        detail = f": {s.get('program')}, {s.get('level')}" if s.get("program") else ""
        reason = f" ({s.get('reason')})" if s.get("reason") else ""
        lines.append(f"{what}{detail}{reason} — {mat}")
    else:
        prewarm = st.get("prewarm") or {}
        if prewarm.get("active"):
            lines.append(f"Pre-warming to {_temp(prewarm.get('setpoint_c'))} — {mat}, "
                         f"{_mmss(prewarm.get('remaining_s'))} left (no session)")
        else:
            lines.append(f"Idle — {mat}")
    audio = st.get("audio") or {}
    if audio.get("paused"):
        lines.append(f"Alarm audio paused ({_mmss(audio.get('remaining_s'))} left)")
    for alarm in st.get("alarms") or []:
        needs, present = alarm.get("needs"), alarm.get("present", True)
        flag = ""
        if needs == "service":
            flag = " (only service can clear: lumbarest ack --pin)"
        elif needs == "ack":
            flag = " (still present)" if present else " (gone: lumbarest ack)"
        lines.append(f"! {alarm.get('priority', '').upper()} {alarm.get('code')}: "
                     f"{alarm.get('title')}{flag}. {alarm.get('advice', '')}".rstrip())
    for reminder in st.get("reminders") or []:
        lines.append(f"i {reminder.get('title')}: {reminder.get('text')}")
    if show_mode and st.get("mode") == "simulation":
        lines.append("(simulation)")
    return "\n".join(lines)


def format_session_row(s: dict) -> str:
    started = (s.get("started_at") or "")[:16].replace("T", " ")
    actual = s.get("actual_min")
    minutes = f"{actual:.0f}/{s.get('planned_min'):.0f} min" if actual is not None \
        else f"-/{s.get('planned_min'):.0f} min"
    outcome = s.get("outcome") or "open"
    maxc = f"max {s['max_c']:.1f} °C" if s.get("max_c") is not None else ""
    return f"#{s['id']:<5} {started}  {s.get('program'):<10} {s.get('level'):<7} " \
           f"{minutes:<12} {outcome:<12} {maxc}".rstrip()


def format_fault_row(f: dict) -> str:
    at = (f.get("at") or "")[:19].replace("T", " ")
    ack = f"acknowledged by {f['acknowledged_by']}" if f.get("acknowledged_by") \
        else "not acknowledged"
    return f"#{f['id']:<5} {at}  {f.get('priority', ''):<7} {f.get('code'):<18} {ack}"


# -- export --------------------------------------------------------------------------------------

def _pages(client: Client, method: str, key: str) -> Iterator[dict]:
    offset = 0
    while True:
        page = client.call(method, {"limit": PAGE, "offset": offset})
        rows = page.get(key) or []
        yield from rows
        offset += len(rows)
        if not rows or offset >= page.get("total", 0):
            return


def write_export(client: Client, out: IO[str]) -> tuple[int, int]:
    """Write sessions and faults as one CSV (column ``record`` says which); no patient data.

    Returns (sessions, faults) written. Used by ``lumbarest export`` and the USB export.
    """
    writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    n_sessions = n_faults = 0
    for s in _pages(client, "history.sessions", "sessions"):
        row = dict(s, record="session", time=s.get("started_at"))
        writer.writerow(row)
        n_sessions += 1
    for f in _pages(client, "history.faults", "faults"):
        row = dict(f, record="fault", time=f.get("at"),
                   readings=json.dumps(f.get("readings") or {}, sort_keys=True))
        writer.writerow(row)
        n_faults += 1
    return n_sessions, n_faults


# -- commands -------------------------------------------------------------------------------------

def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))


def cmd_status(c: Client, args) -> int:
    st = c.call("status")
    if args.json:
        _print_json(st)
    else:
        print(format_status(st))
    return 0


def _state_command(method: str, params: dict | None = None):
    def run(c: Client, args) -> int:
        st = c.call(method, params(args) if callable(params) else params)
        if getattr(args, "json", False):
            _print_json(st)
        else:
            print(format_status(st, show_mode=False))
        return 0
    return run


def cmd_ack(c: Client, args) -> int:
    params: dict = {}
    if args.code:
        params["code"] = args.code
    if args.pin:
        params["pin"] = args.pin
    result = c.call("fault.acknowledge", params)
    if args.json:
        _print_json(result)
    elif result["cleared"]:
        print("Acknowledged: " + ", ".join(result["cleared"]))
    else:
        print("Nothing to acknowledge.")
    return 0


def cmd_history(c: Client, args) -> int:
    result = c.call("history.sessions", {"limit": args.limit, "offset": args.offset})
    if args.json:
        _print_json(result)
        return 0
    if not result["sessions"]:
        print("No sessions yet.")
    for s in result["sessions"]:
        print(format_session_row(s))
    if result["total"] > len(result["sessions"]) + args.offset:
        print(f"({len(result['sessions'])} of {result['total']}; --limit/--offset for more)")
    return 0


def cmd_faults(c: Client, args) -> int:
    result = c.call("history.faults", {"limit": args.limit, "offset": args.offset})
    if args.json:
        _print_json(result)
        return 0
    if not result["faults"]:
        print("No faults recorded.")
    for f in result["faults"]:
        print(format_fault_row(f))
    return 0


def _export_to(c: Client, path: Path) -> int:
    tmp = path.with_name(path.name + ".part")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as out:
            n_sessions, n_faults = write_export(c, out)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        print(f"Cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_REFUSED
    print(f"Exported {n_sessions} sessions and {n_faults} faults to {path}.")
    return 0


USB_FS = ("vfat", "exfat", "ntfs", "ntfs3", "fuseblk", "ext4")
USB_ROOTS = ("/media/", "/run/media/", "/mnt/")


def usb_mounts(mounts_text: str, roots: tuple[str, ...] = USB_ROOTS) -> list[Path]:
    """Writable-looking drives from ``/proc/mounts``: a USB-stick file system mounted under
    ``/media``, ``/run/media`` or ``/mnt`` (as udisks or a udev rule mounts them)."""
    found = []
    for line in mounts_text.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        _dev, where, fstype, options = parts[:4]
        where = where.replace("\\040", " ")
        if fstype in USB_FS and where.startswith(roots) and "ro" not in options.split(","):
            found.append(Path(where))
    return found


def cmd_export(c: Client, args) -> int:
    if args.usb:
        try:
            drives = usb_mounts(Path("/proc/mounts").read_text())
        except OSError:
            drives = []
        if not drives:
            print("No USB drive found: plug one in and wait until it is mounted "
                  "(under /media).", file=sys.stderr)
            return EXIT_REFUSED
        from datetime import datetime  # noqa: PLC0415
        args.file = str(drives[0] / f"lumbarest-{datetime.now():%Y%m%d-%H%M}.csv")
    elif not args.file:
        print("Give a FILE.csv or --usb.", file=sys.stderr)
        return 64
    code = _export_to(c, Path(args.file))
    if code == 0 and args.usb:
        os.sync()            # staff pull the stick right after the message
    return code


def cmd_selftest(c: Client, args) -> int:
    result = c.call("system.selftest")
    if args.json:
        _print_json(result)
    else:
        for check in result.get("checks", []):
            mark = "ok  " if check.get("passed") else "FAIL"
            print(f"{mark} {check.get('name')}: {check.get('detail', '')}".rstrip(": "))
        print("Self-test passed." if result.get("passed") else "Self-test FAILED.")
    return 0 if result.get("passed") else EXIT_REFUSED


def _print_checks(checks: list[dict], as_json: bool) -> int:
    passed = all(check["ok"] for check in checks)
    if as_json:
        _print_json({"passed": passed, "checks": checks})
    else:
        from appliance.hwcheck import Check  # noqa: PLC0415

        for check in checks:
            print(Check(**check).line())
        print("Hardware check passed." if passed else "Hardware check FAILED: fix the lines "
              "marked FAIL, top first.")
    return 0 if passed else EXIT_REFUSED


def cmd_hwcheck(c: Client, args) -> int:
    """The appliance runs: it checks with its own devices (service PIN)."""
    result = c.call("system.hwcheck", {"outputs": args.outputs,
                                       **({"pin": args.pin} if args.pin else {})})
    return _print_checks(result["checks"], args.json)


def cmd_hwcheck_stopped(args) -> int:
    """The appliance is stopped: open the hardware here (as root or the lumbarest user)."""
    from appliance import config as config_module  # noqa: PLC0415
    from appliance.hwcheck import run_standalone  # noqa: PLC0415
    from appliance.paths import CONFIG_FILE  # noqa: PLC0415

    path = Path(args.config) if args.config else (CONFIG_FILE if CONFIG_FILE.exists() else None)
    try:
        config = config_module.load(path)
    except config_module.ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_REFUSED
    if not args.json:
        print(f"The appliance is not running: checking the hardware directly ({config.source}).")
        if args.outputs:
            print("Pulsing the relay and the SSR: the mat must be empty.", flush=True)
    checks = [check.as_dict() for check in run_standalone(config, outputs=args.outputs)]
    return _print_checks(checks, args.json)


def cmd_sim_inject(c: Client, args) -> int:
    result = c.call("sim.inject", {"fault": args.fault})
    print(json.dumps(result) if args.json else f"Injected: {result['injected']}")
    return 0


def cmd_sim_patient(c: Client, args) -> int:
    result = c.call("sim.patient", {"on": args.state == "on"})
    if args.json:
        print(json.dumps(result))
    else:
        print("Simulated patient is " + ("on" if result["patient_on"] else "off") + " the mat.")
    return 0


def _show_tune(result: dict) -> None:
    relay, proposed = result, result.get("proposed", {})
    if relay.get("ultimate_period_s"):
        print(f"Relay test: ultimate gain {relay['ultimate_gain_w_per_k']:.1f} W/K, "
              f"period {relay['ultimate_period_s']:.0f} s, amplitude {relay['oscillation_amplitude_c']:.2f} °C")
    for section, values in proposed.items():
        print(f"[{section}]")
        for key, value in values.items():
            print(f"{key} = {value}")
    if "fit" in result:
        print(f"Model fit: rms {result['fit']['rms_c']:.3f} °C — "
              + ("good" if result.get("ok") else "NOT good enough to use"))


def cmd_tune(c: Client, args) -> int:
    """Start the relay test, wait for it, show the fitted model, write it only when confirmed."""
    if args.stop:
        print("Autotune stopped." if c.call("tune.stop")["stopped"] else "No autotune was running.")
        return 0
    status = c.call("tune.status")
    if not status.get("active") and not status.get("done"):
        status = c.call("tune.start", {"pin": args.pin, **({"test_c": args.test_c} if args.test_c else {})})
        print(f"Autotune started at {status['test_c']:g} °C. It takes 30–60 minutes; every safety "
              f"rule stays active. Ctrl-C leaves it running; `lumbarest tune --stop` ends it.")
    while status.get("active"):
        time.sleep(args.poll_s)
        status = c.call("tune.status")
        print(f"{_mmss(status.get('elapsed_s'))} elapsed, {status.get('cycles', 0)} cycles measured",
              flush=True)
    if not status.get("done"):
        print(f"Autotune did not finish: {status.get('ended')}.", file=sys.stderr)
        return EXIT_REFUSED
    result = c.call("tune.result")
    if args.json:
        _print_json(result)
    else:
        _show_tune(result)
    if not result.get("ok"):
        return EXIT_REFUSED
    if not args.yes:
        answer = input("Write this model to the appliance's configuration? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            print("Nothing was written.")
            return 0
    c.call("tune.apply", {"pin": args.pin, "confirm": True})
    print("Written. The controller and the safety checks use the new model now.")
    return 0


def cmd_fleet(_client: None, args) -> int:
    """Every unit on the clinic's broker, one line each, alarms first (docs/fleet.md)."""
    from bridge import config as bridge_config  # noqa: PLC0415 - only this command needs MQTT
    from bridge.fleet import FleetWatcher, format_board  # noqa: PLC0415

    path = Path(args.config) if args.config else bridge_config.CONFIG_FILE
    try:
        if path.exists():
            config = bridge_config.load(path)
            if args.broker:
                broker = bridge_config.parse_broker(args.broker, allow_insecure=True)
                config = dataclasses.replace(config, broker=broker)
        elif args.broker:
            # Typed on the command line: a plain mqtt:// URL is the user's explicit choice.
            config = bridge_config.from_dict({"broker": args.broker, "allow_insecure": True})
        else:
            print(f"No broker: give --broker mqtts://HOST:8883 or configure {path}.",
                  file=sys.stderr)
            return 64
    except bridge_config.BridgeConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 64
    changed = threading.Event()
    watcher = FleetWatcher(config, on_change=changed.set)
    watcher.start()
    try:
        if not watcher.settle(timeout_s=args.timeout):
            print(f"Cannot reach the broker at {config.broker.url}"
                  + (f": {watcher.error}" if watcher.error else "."), file=sys.stderr)
            return EXIT_UNAVAILABLE
        if args.json:
            _print_json([dict(vars(row), alarms=list(row.alarms)) for row in watcher.rows()])
            return 0
        print(format_board(watcher.rows()), flush=True)
        while args.watch:
            changed.wait()
            time.sleep(0.5)             # at most two boards a second
            changed.clear()
            print(f"\n— {time.strftime('%H:%M:%S')} —")
            print(format_board(watcher.rows()), flush=True)
        return 0
    finally:
        watcher.stop()


def cmd_schedule(c: Client, args) -> int:
    """The clinic schedules as saved, and when they run next."""
    settings = c.call("settings.get")
    upcoming = c.call("schedule.next")
    keys = ("prewarm_enabled", "prewarm_weekdays", "prewarm_time", "prewarm_lead_min",
            "prewarm_hold_min", "selftest_time", "prune_time")
    if args.json:
        _print_json({**{k: settings.get(k) for k in keys}, "next": upcoming})
        return 0
    days = ", ".join(settings.get("prewarm_weekdays") or []) or "no days"
    if settings.get("prewarm_enabled"):
        print(f"Pre-warm: on, {days}, ready at {settings.get('prewarm_time')} "
              f"(starts {settings.get('prewarm_lead_min')} min before, holds "
              f"{settings.get('prewarm_hold_min')} min)")
    else:
        print(f"Pre-warm: off ({days}, {settings.get('prewarm_time')})")
    print(f"Self-test: every night at {settings.get('selftest_time')}")
    print(f"Next pre-warm: {upcoming.get('prewarm') or 'none planned'}")
    print(f"Next self-test: {upcoming.get('selftest') or 'none planned'}")
    return 0


# -- argument parsing --------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message: str):           # usage errors exit 64 (EX_USAGE), not 2
        self.print_usage(sys.stderr)
        self.exit(64, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lumbarest", description="Control the Lumbarest heated traction mat.")
    parser.add_argument("--socket", help="the appliance socket (default: $LUMBAREST_SOCKET or "
                                         "the system/per-user socket)")
    parser.add_argument("--timeout", type=float, default=10.0, help=argparse.SUPPRESS)
    common = _Parser(add_help=False)
    common.add_argument("--json", action="store_true", help="print the raw JSON result")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Parser)

    p = sub.add_parser("status", parents=[common], help="show what the mat is doing")
    p.set_defaults(run=cmd_status)

    p = sub.add_parser("start", parents=[common], help="start a session")
    p.add_argument("program", help="e.g. quick, standard, deep, traction (see status --json)")
    p.add_argument("--level", help="heat level (default: medium; off for traction)")
    p.set_defaults(run=_state_command(
        "session.start",
        lambda a: {"program": a.program, **({"level": a.level} if a.level else {})}))

    for name, method, text in (("pause", "session.pause", "pause the session (heater off)"),
                               ("resume", "session.resume", "resume a paused session"),
                               ("stop", "session.stop", "stop the session"),
                               ("extend", "session.extend", "add 5 minutes")):
        p = sub.add_parser(name, parents=[common], help=text)
        p.set_defaults(run=_state_command(method))

    p = sub.add_parser("ack", parents=[common], help="acknowledge alarms")
    p.add_argument("code", nargs="?", help="one alarm code (default: all)")
    p.add_argument("--pin", help="clinic or service PIN (needed for latched faults)")
    p.set_defaults(run=cmd_ack)

    for name, run, text in (("history", cmd_history, "list past sessions"),
                            ("faults", cmd_faults, "list recorded faults")):
        p = sub.add_parser(name, parents=[common], help=text)
        p.add_argument("--limit", type=int, default=20 if name == "history" else 50)
        p.add_argument("--offset", type=int, default=0)
        p.set_defaults(run=run)

    p = sub.add_parser("export", help="write sessions and faults to a CSV file (or a USB drive)")
    p.add_argument("file", metavar="FILE.csv", nargs="?")
    p.add_argument("--usb", action="store_true",
                   help="write to the first mounted USB drive (lumbarest-DATE-TIME.csv)")
    p.set_defaults(run=cmd_export, json=False)

    p = sub.add_parser("schedule", parents=[common],
                       help="show the pre-warm and self-test schedules and their next runs")
    p.set_defaults(run=cmd_schedule)

    p = sub.add_parser("selftest", parents=[common], help="run the self-test")
    p.set_defaults(run=cmd_selftest)

    p = sub.add_parser("hwcheck", parents=[common],
                       help="check the Pi's hardware (first power-on), one line per check")
    p.add_argument("--pin", help="service PIN (needed while the appliance runs)")
    p.add_argument("--outputs", action="store_true",
                   help="also pulse the relay and the SSR briefly, watching for a rise "
                        "(mat empty, appliance stopped)")
    p.add_argument("--config", help="configuration file when the appliance is stopped "
                                    "(default /etc/lumbarest/appliance.toml)")
    p.set_defaults(run=cmd_hwcheck, run_stopped=cmd_hwcheck_stopped)

    p = sub.add_parser("prewarm", help="pre-warm the mat to the low level without a session")
    pwsub = p.add_subparsers(dest="prewarm_command", required=True, metavar="start|stop",
                             parser_class=_Parser)
    q = pwsub.add_parser("start", parents=[common], help="heat for MINUTES (clinic PIN)")
    q.add_argument("minutes", type=float)
    q.add_argument("--pin", required=True, help="clinic or service PIN")
    q.set_defaults(run=_state_command("prewarm.start",
                                      lambda a: {"minutes": a.minutes, "pin": a.pin}))
    q = pwsub.add_parser("stop", parents=[common], help="stop the pre-warm now")
    q.set_defaults(run=_state_command("prewarm.stop"))

    p = sub.add_parser("tune", parents=[common],
                       help="autotune: relay test, model fit, written only when confirmed")
    p.add_argument("--pin", help="service PIN (to start and to write the result)")
    p.add_argument("--test-c", type=float, help="test temperature (default: the low level)")
    p.add_argument("--yes", action="store_true", help="write the result without asking")
    p.add_argument("--stop", action="store_true", help="stop a running autotune")
    p.add_argument("--poll-s", type=float, default=30.0, help=argparse.SUPPRESS)
    p.set_defaults(run=cmd_tune)

    p = sub.add_parser("silence", parents=[common],
                       help="pause alarm audio (the alarms stay) for SECONDS (at most 120)")
    p.add_argument("seconds", nargs="?", type=float, default=120)
    p.set_defaults(run=_state_command("alarm.silence", lambda a: {"seconds": a.seconds}))

    p = sub.add_parser("fleet", parents=[common],
                       help="every unit on the clinic's MQTT broker, alarms first")
    p.add_argument("--broker", help="broker URL (default: the one in the bridge configuration)")
    p.add_argument("--config", help="bridge configuration for credentials and CA "
                                    "(default /etc/lumbarest/bridge.toml)")
    p.add_argument("--watch", action="store_true", help="keep showing changes until Ctrl-C")
    p.set_defaults(run=cmd_fleet, needs_appliance=False)

    p = sub.add_parser("sim", help="simulation controls")
    simsub = p.add_subparsers(dest="sim_command", required=True, metavar="SIMCOMMAND",
                              parser_class=_Parser)
    q = simsub.add_parser("inject", parents=[common], help="inject a fault")
    q.add_argument("fault")
    q.set_defaults(run=cmd_sim_inject)
    q = simsub.add_parser("patient", parents=[common], help="put a patient on or off the mat")
    q.add_argument("state", choices=("on", "off"))
    q.set_defaults(run=cmd_sim_patient)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    client = None
    try:
        if not getattr(args, "needs_appliance", True):
            return args.run(None, args)
        try:
            client = Client(args.socket, timeout_s=args.timeout)
        except ApplianceUnavailable:
            if getattr(args, "run_stopped", None):   # hwcheck works with the appliance stopped
                return args.run_stopped(args)
            raise
        return args.run(client, args)
    except ApplianceUnavailable as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_UNAVAILABLE
    except RpcError as exc:
        print(exc.message, file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:                 # e.g. `lumbarest status --json | head`
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    finally:
        if client is not None:
            client.close()


if __name__ == "__main__":
    sys.exit(main())
