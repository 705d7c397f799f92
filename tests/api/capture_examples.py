"""Capture real request/response pairs for docs/protocol.md.

``python -m tests.api.capture_examples [--fake]`` starts the real appliance (or the fake core with
``--fake``) in a temp dir, runs one example of every method and prints Markdown.
"""

from __future__ import annotations

import json
import socket
import sys
import tempfile
import time
from pathlib import Path


class Capture:
    def __init__(self, path: Path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.file = self.sock.makefile("rb")
        self.id = 0
        self.out: list[str] = []

    def call(self, method, params=None, title=None, note=None, keep_notification=False,
             brief=False):
        self.id += 1
        msg = {"jsonrpc": "2.0", "id": self.id, "method": method}
        if params is not None:
            msg["params"] = params
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        notification = None
        while True:
            reply = json.loads(self.file.readline())
            if reply.get("id") == self.id:
                break
        if keep_notification:
            notification = json.loads(self.file.readline())
        self.out.append(f"### {title or method}\n")
        if note:
            self.out.append(note + "\n")
        shown = reply
        if brief and "result" in reply:
            shown = dict(reply, result={"session": reply["result"]["session"],
                                        "…": "the rest of the state object, as in status"})
        self.out.append("```json\n--> " + json.dumps(msg) + "\n<-- "
                        + json.dumps(shown, indent=2, ensure_ascii=False) + "\n```\n")
        if notification:
            self.out.append("followed at once by the current state:\n\n```json\n<-- "
                            + json.dumps(notification)[:300] + " …\n```\n")
        return reply


    def raw(self, line: bytes, title: str):
        self.sock.sendall(line + b"\n")
        reply = json.loads(self.file.readline())
        self.out.append(f"### {title}\n")
        self.out.append("```json\n--> " + line.decode() + "\n<-- "
                        + json.dumps(reply, ensure_ascii=False) + "\n```\n")


def run(path: Path) -> str:
    c = Capture(path)
    c.call("status")
    c.call("subscribe", {"client": "kiosk"}, keep_notification=True)
    c.call("unsubscribe")
    c.call("subscribe", {"client": "kiosk"}, title="subscribe (again, as the kiosk)",
           keep_notification=True)
    c.call("session.start", {"program": "standard", "level": "high"})
    time.sleep(1.0)
    c.call("session.pause", brief=True)
    c.call("session.resume", brief=True)
    c.call("session.extend", brief=True)
    c.call("session.stop", brief=True)
    c.call("session.stop", title="session.stop (not allowed)", note="A refused command:")
    c.call("session.start", {"program": "standard", "level": "scorching"},
           title="session.start (invalid params)")
    c.call("sim.patient", {"on": True})
    c.call("sim.inject", {"fault": "rtd_open"})
    time.sleep(1.5)
    c.call("status", title="status (with an alarm)")
    c.call("fault.acknowledge", {}, title="fault.acknowledge (condition still present)")
    c.call("sim.clear")
    time.sleep(1.5)
    c.call("fault.acknowledge", {"code": "rtd_open"})
    c.call("sim.inject", {"fault": "rtd_open"}, title="sim.inject (the same fault again)")
    time.sleep(1.5)
    c.call("sim.clear", title="sim.clear (again)")
    time.sleep(1.5)
    c.call("fault.acknowledge", {"pin": "1234"}, title="fault.acknowledge (with the clinic PIN)")
    c.call("auth.check", {"role": "service", "pin": "0000"}, title="auth.check (wrong PIN)")
    c.call("history.sessions", {"limit": 2, "offset": 0})
    c.call("history.faults", {"limit": 2})
    c.call("history.trace", {"session_id": 1})
    c.call("history.audit", {"limit": 2})
    c.call("history.counters")
    c.call("settings.get")
    c.call("settings.set", {"pin": "1234", "changes": {"volume": 3}})
    c.call("settings.set", {"pin": "0000", "changes": {"volume": 3}},
           title="settings.set (wrong PIN)")
    c.call("auth.check", {"role": "clinic", "pin": "1234"})
    c.call("system.selftest")
    c.call("nope", title="unknown method")
    c.call("history.sessions", {"limit": 0}, title="history.sessions (out of range)")
    c.call("history.sessions", {"limit": "5"}, title="history.sessions (wrong type)")
    c.call("sim.patient", {"on": True, "x": 1}, title="sim.patient (unknown parameter)")
    c.raw(b'{"jsonrpc":"2.0","id":1,"method":"status"', "malformed JSON")
    c.raw(b'[{"jsonrpc":"2.0","id":1,"method":"status"}]', "a batch")
    c.raw(b'{"jsonrpc":"2.0","id":1,"method":"status","params":[]}', "positional params")
    for _ in range(4):
        c.id += 1
        c.sock.sendall(json.dumps({"jsonrpc": "2.0", "id": c.id, "method": "auth.check",
                                   "params": {"role": "clinic", "pin": "0000"}}).encode() + b"\n")
        c.file.readline()
    c.call("auth.check", {"role": "clinic", "pin": "0000"},
           title="auth.check (the fifth wrong PIN in a row: locked out)")
    return "\n".join(c.out)


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="lr-cap-"))
    if "--fake" in sys.argv:
        from tests.api.conftest import ServerHarness
        h = ServerHarness(tmp)
        try:
            print(run(h.socket))
        finally:
            h.close()
    else:
        from tests.api.conftest import ApplianceProcess
        app = ApplianceProcess(tmp).start()
        try:
            print(run(app.socket))
        finally:
            app.stop()


if __name__ == "__main__":
    main()
