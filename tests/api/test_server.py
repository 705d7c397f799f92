"""Protocol conformance and robustness of the API server (on the fake core)."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import threading
import time

import pytest

from appliance import errors
from appliance.client import ApplianceUnavailable, RpcError
from tests.api.conftest import ServerHarness
from tests.api.rawclient import Raw

STATE_KEYS = {"protocol", "mode", "unit_name", "wall_time", "session", "setpoint_c", "mat_c",
              "sensor_ok", "heating", "duty", "relay_closed", "patient_on", "alarms",
              "ui_clients", "connection"}
SESSION_KEYS = {"state", "program", "level", "phase", "planned_s", "elapsed_s", "remaining_s",
                "outcome", "reason", "mean_c"}


def rpc_error(client, method, params=None) -> RpcError:
    with pytest.raises(RpcError) as info:
        client.call(method, params)
    return info.value


# -- transport ---------------------------------------------------------------------------------

def test_socket_mode_is_0660(harness):
    mode = stat.S_IMODE(os.stat(harness.socket).st_mode)
    assert mode == 0o660


def test_stale_socket_is_replaced_and_live_one_refused(short_tmp):
    h = ServerHarness(short_tmp, tick_s=None)
    try:
        from appliance.server import ApiServer
        second = ApiServer(h.core, h.socket, group=None)
        with pytest.raises(RuntimeError, match="already listening"):
            h.run(second.start())
    finally:
        h.close()
    # A socket file left behind by a dead process is taken over.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(h.socket))
    s.close()
    h2 = ServerHarness(short_tmp, tick_s=None)
    try:
        with h2.client() as c:
            assert c.call("status")["protocol"] == 1
    finally:
        h2.close()


# -- conformance: every method ------------------------------------------------------------------

def test_status(harness):
    with harness.client() as c:
        st = c.call("status")
    assert STATE_KEYS <= set(st)
    assert SESSION_KEYS <= set(st["session"])
    assert st["protocol"] == 1
    assert st["session"]["state"] == "idle"
    assert st["programs"]["standard"] == 30
    assert "high" in st["levels"]
    assert st["connection"]["clients"] == 1


def test_session_life_cycle(harness):
    with harness.client() as c:
        st = c.call("session.start", {"program": "standard", "level": "high"})
        assert st["session"]["state"] == "running" and st["session"]["level"] == "high"
        assert c.call("session.pause")["session"]["state"] == "paused"
        assert c.call("session.resume")["session"]["state"] == "running"
        planned = c.call("session.extend")["session"]["planned_s"]
        assert planned == 1800 + 300
        assert c.call("session.stop")["session"]["state"] == "stopped"
        hist = c.call("history.sessions", {"limit": 10})
        assert hist["total"] == 1
        s = hist["sessions"][0]
        assert s["outcome"] == "stopped" and s["program"] == "standard"
        assert set(s) == {"id", "started_at", "ended_at", "program", "level", "planned_min",
                          "actual_min", "outcome", "reason", "max_c", "mean_c", "energy_wh"}
        tr = c.call("history.trace", {"session_id": s["id"]})
        assert tr == {"session_id": s["id"], "points": []}


def test_session_start_default_levels(harness):
    with harness.client() as c:
        assert c.call("session.start", {"program": "traction"})["session"]["level"] == "off"
        c.call("session.stop")
        assert c.call("session.start", {"program": "short"})["session"]["level"] == "medium"


def test_invalid_transitions_change_nothing(harness):
    with harness.client() as c:
        for method in ("session.pause", "session.resume", "session.stop", "session.extend"):
            err = rpc_error(c, method)
            assert err.code == errors.NOT_ALLOWED and err.data == {"state": "idle"}
        c.call("session.start", {"program": "standard", "level": "low"})
        err = rpc_error(c, "session.start", {"program": "standard", "level": "low"})
        assert err.code == errors.NOT_ALLOWED
        assert c.call("status")["session"]["state"] == "running"


def test_unknown_program_and_level(harness):
    with harness.client() as c:
        err = rpc_error(c, "session.start", {"program": "nope", "level": "low"})
        assert err.code == errors.INVALID_PARAMS and "standard" in err.message
        err = rpc_error(c, "session.start", {"program": "standard", "level": "scorching"})
        assert err.code == errors.INVALID_PARAMS and "high" in err.message
        assert c.call("status")["session"]["state"] == "idle"
    assert harness.core.calls == []


def test_subscribe_pushes_state_and_counts_kiosks(harness):
    got = []
    with harness.client(on_notification=lambda m, p: got.append((m, p))) as c:
        assert c.call("subscribe", {"client": "kiosk"}) == {"subscribed": True}
        c.receive()                                     # the immediate state
        assert got and got[0][0] == "state" and STATE_KEYS <= set(got[0][1])
        assert harness.core.ui_clients == 1
        with harness.client() as other:
            other.call("subscribe", {"client": "cli"})
            assert harness.core.ui_clients == 1
        assert c.call("unsubscribe") == {"subscribed": False}
        assert harness.core.ui_clients == 0
        c.call("subscribe", {"client": "kiosk"})
        assert harness.core.ui_clients == 1
    deadline = time.monotonic() + 5
    while harness.core.ui_clients and time.monotonic() < deadline:
        time.sleep(0.02)
    assert harness.core.ui_clients == 0                 # disconnect counted


def test_push_rate_at_least_2hz_when_idle(harness):
    got = []
    with harness.client(on_notification=lambda m, p: got.append(time.monotonic())) as c:
        c.call("subscribe")
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.0:
            c.receive()
    rate = (len(got) - 1) / (got[-1] - got[0])
    assert rate >= 1.9


def test_publish_dedups_unchanged_state(short_tmp):
    h = ServerHarness(short_tmp, tick_s=None)
    try:
        got = []
        with h.client(on_notification=lambda m, p: got.append(p)) as c:
            c.call("subscribe")
            c.receive()
            state = h.core.snapshot()
            for _ in range(5):
                h.call_in_loop(h.server.publish, dict(state, wall_time="x"))
            changed = dict(state, mat_c=state["mat_c"] + 1.0)
            h.call_in_loop(h.server.publish, changed)
            h.call_in_loop(h.server.publish, dict(changed, mat_c=changed["mat_c"] + 0.01))
            c.call("status")            # everything pushed before this reply has arrived
        pushes = [p["mat_c"] for p in got[1:]]
        assert pushes == [state["mat_c"], state["mat_c"] + 1.0]
    finally:
        h.close()


def test_fault_acknowledge_and_audit(harness):
    with harness.client() as c:
        assert c.call("sim.inject", {"fault": "rtd_open"}) == {"injected": "rtd_open"}
        st = c.call("status")
        assert [a["code"] for a in st["alarms"]] == ["rtd_open"]
        assert c.call("fault.acknowledge", {}) == {"cleared": ["rtd_open"]}
        faults = c.call("history.faults", {"limit": 5, "offset": 0})
        assert faults["total"] == 1
        f = faults["faults"][0]
        assert f["code"] == "rtd_open" and f["acknowledged_by"] == "user"
        assert f["readings"] == {"mat_c": 22.0}
        # a latched fault needs the service PIN
        c.call("sim.inject", {"fault": "ssr_welded"})
        assert rpc_error(c, "fault.acknowledge", {"code": "ssr_welded"}).code == \
            errors.PIN_REQUIRED
        assert rpc_error(c, "fault.acknowledge",
                         {"code": "ssr_welded", "pin": "1234"}).code == errors.PIN_REQUIRED
        assert c.call("fault.acknowledge", {"code": "ssr_welded", "pin": "7391"}) == \
            {"cleared": ["ssr_welded"]}
        audit = c.call("history.audit")["entries"]
        acks = [(e["role"], e["details"]["cleared"]) for e in audit
                if e["action"] == "fault.acknowledge"]
        assert acks == [("service", ["ssr_welded"]), ("user", ["rtd_open"])]


def test_fault_acknowledge_audit_roles(harness):
    with harness.client() as c:
        c.call("sim.inject", {"fault": "rtd_open"})
        c.call("fault.acknowledge", {"code": "rtd_open", "pin": "1234"})
        c.call("sim.inject", {"fault": "ssr_welded"})
        c.call("fault.acknowledge", {"pin": "7391"})
        entries = c.call("history.audit")["entries"]
    acks = [(e["role"], e["details"]["cleared"]) for e in entries
            if e["action"] == "fault.acknowledge"]
    assert acks == [("service", ["ssr_welded"]), ("clinic", ["rtd_open"])]
    assert all(e["at"] for e in entries)


def test_settings_get_set_with_pins(harness):
    with harness.client() as c:
        s = c.call("settings.get")
        assert s["volume"] == 5 and s["pins_default"] == {"clinic": True, "service": True}
        err = rpc_error(c, "settings.set", {"changes": {"volume": 7}})
        assert err.code == errors.PIN_REQUIRED and err.data == {"needs": "clinic"}
        err = rpc_error(c, "settings.set", {"pin": "0000", "changes": {"volume": 7}})
        assert err.code == errors.PIN_REQUIRED
        assert c.call("settings.get")["volume"] == 5
        s = c.call("settings.set", {"pin": "1234", "changes": {"volume": 7}})
        assert s["volume"] == 7
        err = rpc_error(c, "settings.set", {"pin": "1234", "changes": {"volume": 99}})
        assert err.code == errors.INVALID_PARAMS and "volume" in err.message
        err = rpc_error(c, "settings.set", {"pin": "1234", "changes": {}})
        assert err.code == errors.INVALID_PARAMS
        # Changing the clinic PIN; a bad value changes nothing at all.
        err = rpc_error(c, "settings.set", {"pin": "1234",
                                            "changes": {"clinic_pin": "12a4", "volume": 3}})
        assert err.code == errors.INVALID_PARAMS and c.call("settings.get")["volume"] == 7
        err = rpc_error(c, "settings.set", {"pin": "1234",
                                            "changes": {"clinic_pin": "5555", "volume": 999}})
        assert err.code == errors.INVALID_PARAMS
        assert c.call("auth.check", {"role": "clinic", "pin": "1234"}) == \
            {"ok": True, "role": "clinic"}
        c.call("settings.set", {"pin": "1234", "changes": {"clinic_pin": "2468"}})
        assert rpc_error(c, "auth.check", {"role": "clinic", "pin": "1234"}).code == \
            errors.PIN_REQUIRED
        assert c.call("auth.check", {"role": "clinic", "pin": "2468"})["ok"] is True
        assert c.call("settings.get")["pins_default"] == {"clinic": False, "service": True}
        # The service PIN needs the service PIN.
        err = rpc_error(c, "settings.set", {"pin": "2468", "changes": {"service_pin": "1111"}})
        assert err.code == errors.PIN_REQUIRED
        c.call("settings.set", {"pin": "7391", "changes": {"service_pin": "86420"}})
        assert c.call("auth.check", {"role": "service", "pin": "86420"})["ok"]
        entries = c.call("history.audit", {"limit": 50})["entries"]
    sets = [(e["role"], e["details"]) for e in entries if e["action"] == "settings.set"]
    assert sets[-1] == ("clinic", {"changes": {"volume": 7}, "pins_changed": []})
    assert ("service", {"changes": {}, "pins_changed": ["service"]}) in sets
    assert any(e["action"] == "pin.wrong" for e in entries)
    # No PIN in clear anywhere in the database. The hashes are hex, so a 4-digit PIN can occur
    # inside one by chance (1 in ~300 runs): look only outside the stored hashes, and check
    # that each stored PIN is a hash.
    dump = "\n".join(harness.history._db.iterdump())
    stored = re.findall(r"scrypt\$[0-9a-f$]+", dump)
    assert len(stored) == 2
    outside_hashes = re.sub(r"scrypt\$[0-9a-f$]+", "<hash>", dump)
    assert "2468" not in outside_hashes and "86420" not in outside_hashes


def test_pin_lockout(harness):
    with harness.client() as c:
        for i in range(4):
            err = rpc_error(c, "auth.check", {"role": "clinic", "pin": "0000"})
            assert err.code == errors.PIN_REQUIRED and err.data is None
        err = rpc_error(c, "auth.check", {"role": "clinic", "pin": "0000"})
        assert err.code == errors.PIN_REQUIRED and 295 <= err.data["locked_s"] <= 300
        # even the right PIN is refused while locked
        err = rpc_error(c, "auth.check", {"role": "clinic", "pin": "1234"})
        assert err.data["locked_s"] > 0
        # the service role is separate
        assert c.call("auth.check", {"role": "service", "pin": "7391"})["ok"]


def test_selftest_and_sim(harness):
    with harness.client() as c:
        r = c.call("system.selftest")
        assert r["passed"] is True and r["checks"][0]["name"] == "sensor"
        assert c.call("sim.patient", {"on": True}) == {"patient_on": True}
        assert c.call("status")["patient_on"] is True
        assert rpc_error(c, "sim.inject", {"fault": "gremlins"}).code == errors.INVALID_PARAMS
        assert rpc_error(c, "sim.patient", {"on": "yes"}).code == errors.INVALID_PARAMS


def test_sim_methods_refused_on_hardware(short_tmp):
    h = ServerHarness(short_tmp, tick_s=None, mode="hardware")
    try:
        with h.client() as c:
            assert rpc_error(c, "sim.inject", {"fault": "rtd_open"}).code == \
                errors.METHOD_NOT_FOUND
            assert rpc_error(c, "sim.patient", {"on": True}).code == errors.METHOD_NOT_FOUND
    finally:
        h.close()


def test_history_paging_and_trace_errors(harness):
    with harness.client() as c:
        for _ in range(3):
            c.call("session.start", {"program": "short", "level": "low"})
            c.call("session.stop")
        page = c.call("history.sessions", {"limit": 2, "offset": 1})
        assert page["total"] == 3 and [s["id"] for s in page["sessions"]] == [2, 1]
        assert c.call("history.sessions")["total"] == 3
        for bad in ({"limit": 0}, {"limit": 501}, {"offset": -1}, {"limit": "5"},
                    {"limit": 5.0}, {"limit": True}, {"page": 1}):
            assert rpc_error(c, "history.sessions", bad).code == errors.INVALID_PARAMS, bad
        assert rpc_error(c, "history.trace", {"session_id": 99}).code == errors.INVALID_PARAMS
        assert rpc_error(c, "history.trace", {}).code == errors.INVALID_PARAMS
        assert c.call("history.counters")["sessions"] == 0


# -- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("line, code", [
    (b"{not json", errors.PARSE_ERROR),
    (b"\xff\xfe", errors.PARSE_ERROR),
    (b"[" * 30000 + b"]" * 30000, errors.PARSE_ERROR),
    (b'{"jsonrpc":"2.0","id":1,"method":"sim.patient","params":{"on":NaN}}', errors.PARSE_ERROR),
    (b'{"jsonrpc":"2.0","id":1,"method":"status","params":{"x":Infinity}}', errors.PARSE_ERROR),
    (b"42", errors.INVALID_REQUEST),
    (b'"status"', errors.INVALID_REQUEST),
    (b"null", errors.INVALID_REQUEST),
    (b'[{"jsonrpc":"2.0","id":1,"method":"status"}]', errors.INVALID_REQUEST),
    (b'{"id":1,"method":"status"}', errors.INVALID_REQUEST),
    (b'{"jsonrpc":"1.0","id":1,"method":"status"}', errors.INVALID_REQUEST),
    (b'{"jsonrpc":"2.0","id":1}', errors.INVALID_REQUEST),
    (b'{"jsonrpc":"2.0","id":1,"method":7}', errors.INVALID_REQUEST),
    (b'{"jsonrpc":"2.0","id":[1],"method":"status"}', errors.INVALID_REQUEST),
    (b'{"jsonrpc":"2.0","id":1,"method":"status","extra":1}', errors.INVALID_REQUEST),
    (b'{"jsonrpc":"2.0","id":1,"method":"nope"}', errors.METHOD_NOT_FOUND),
    (b'{"jsonrpc":"2.0","id":1,"method":"status","params":[1]}', errors.INVALID_PARAMS),
    (b'{"jsonrpc":"2.0","id":1,"method":"status","params":{"x":1}}', errors.INVALID_PARAMS),
    (b'{"jsonrpc":"2.0","id":1,"method":"session.start","params":{}}', errors.INVALID_PARAMS),
    (b'{"jsonrpc":"2.0","id":1,"method":"session.start","params":{"program":3}}',
     errors.INVALID_PARAMS),
    (b'{"jsonrpc":"2.0","id":1,"method":"sim.inject","params":{"fault":null}}',
     errors.INVALID_PARAMS),
    (b'{"jsonrpc":"2.0","id":1,"method":"history.faults","params":{"limit":1e400}}',
     errors.INVALID_PARAMS),
])
def test_bad_requests(harness, line, code):
    raw = Raw(harness.socket)
    try:
        raw.send_line(line)
        reply = raw.recv()
        assert reply["jsonrpc"] == "2.0" and reply["error"]["code"] == code
        assert isinstance(reply["error"]["message"], str) and reply["error"]["message"]
        # the connection still works afterwards
        assert raw.request({"jsonrpc": "2.0", "id": 9, "method": "status"})["id"] == 9
    finally:
        raw.close()
    assert harness.core.calls == [] and harness.core.state == "idle"


def test_notification_gets_no_reply_but_runs(harness):
    raw = Raw(harness.socket)
    try:
        raw.send({"jsonrpc": "2.0", "method": "sim.patient", "params": {"on": True}})
        raw.send({"jsonrpc": "2.0", "method": "nope"})
        reply = raw.request({"jsonrpc": "2.0", "id": "a", "method": "status"})
        assert reply["id"] == "a" and reply["result"]["patient_on"] is True
    finally:
        raw.close()


def test_line_over_64k_is_refused_and_closed(harness):
    raw = Raw(harness.socket)
    try:
        big = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "status",
                          "params": {"x": "a" * (70 * 1024)}})
        raw.send_line(big)
        reply = raw.recv()
        assert reply["error"]["code"] == errors.INVALID_REQUEST
        assert "64" in reply["error"]["message"] or "65536" in reply["error"]["message"]
        assert raw.recv() is None                           # closed
    finally:
        raw.close()
    # exactly at the limit is fine
    raw = Raw(harness.socket)
    try:
        msg = {"jsonrpc": "2.0", "id": 1, "method": "status", "params": {}}
        pad = 64 * 1024 - len(json.dumps(msg))
        line = json.dumps(msg)[:-1] + " " * pad + "}"
        assert len(line) == 64 * 1024
        raw.send_line(line)
        assert raw.recv()["result"]["protocol"] == 1
    finally:
        raw.close()


def test_flood_is_rate_limited(short_tmp):
    h = ServerHarness(short_tmp, tick_s=None, rate_per_s=50, burst=20)
    try:
        raw = Raw(h.socket)
        n = 200
        payload = b"".join(json.dumps({"jsonrpc": "2.0", "id": i, "method": "sim.patient",
                                       "params": {"on": True}}).encode() + b"\n"
                           for i in range(n))
        raw.sock.sendall(payload)
        replies = [raw.recv() for _ in range(n)]
        limited = [r for r in replies if "error" in r]
        assert all(r["error"]["code"] == errors.TOO_MANY_REQUESTS for r in limited)
        assert len(limited) >= n - 20 - 20
        assert [r["id"] for r in replies] == list(range(n))
        time.sleep(0.1)                                 # tokens come back
        assert raw.request({"jsonrpc": "2.0", "id": "ok", "method": "status"})["id"] == "ok"
        raw.close()
    finally:
        h.close()


def test_never_reading_client_is_dropped_others_keep_receiving(short_tmp):
    h = ServerHarness(short_tmp, tick_s=None)
    try:
        lazy = Raw(h.socket)
        lazy.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        lazy.send({"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": {"client": "kiosk"}})
        got = []
        good = h.client(on_notification=lambda m, p: got.append(p))
        good.call("subscribe")
        stop = threading.Event()

        def reader():
            try:
                while not stop.is_set():
                    good.receive()
            except Exception:
                pass
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        time.sleep(0.2)
        assert h.server.client_count == 2 and h.core.ui_clients == 1
        big_alarm = {"code": "x", "text": "y" * 2000}
        base = h.core.snapshot()
        for i in range(3000):
            h.call_in_loop(h.server.publish, dict(base, mat_c=float(i), alarms=[big_alarm]))
            if h.server.client_count == 1:
                break
        assert h.server.client_count == 1, "the lazy client was not dropped"
        assert h.core.ui_clients == 0
        before = len(got)
        for i in range(20):
            h.call_in_loop(h.server.publish, dict(base, mat_c=10000.0 + i))
        deadline = time.monotonic() + 5
        while len(got) < before + 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(got) >= before + 20
        stop.set()
        good.close()
        lazy.close()
    finally:
        h.close()


def test_many_clients_at_once(harness):
    errors_seen = []

    def worker(n):
        try:
            with harness.client() as c:
                if n % 2:
                    c.call("subscribe")
                for i in range(100):
                    assert c.call("status")["protocol"] == 1
                    c.call("sim.patient", {"on": bool(i % 2)})
        except Exception as exc:              # noqa: BLE001
            errors_seen.append(exc)
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors_seen


def test_client_unavailable_when_no_server(short_tmp):
    with pytest.raises(ApplianceUnavailable, match="not running"):
        from appliance.client import Client
        Client(short_tmp / "nothing.sock")


def test_idle_connections_cannot_lock_out_the_kiosk(harness):
    from appliance.server import MAX_CLIENTS
    idle = [Raw(harness.socket) for _ in range(MAX_CLIENTS)]
    try:
        deadline = time.monotonic() + 5
        while harness.server.client_count < MAX_CLIENTS and time.monotonic() < deadline:
            time.sleep(0.01)
        with harness.client() as kiosk:
            assert kiosk.call("subscribe", {"client": "kiosk"}) == {"subscribed": True}
            assert harness.server.client_count == MAX_CLIENTS
            assert idle[0].recv() is None                  # the oldest idle one was closed
    finally:
        for r in idle:
            r.close()


def test_hung_kiosk_stops_counting_as_ui_client_before_it_is_dropped(short_tmp):
    h = ServerHarness(short_tmp, tick_s=None)
    try:
        hung = Raw(h.socket)
        hung.send({"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": {"client": "kiosk"}})
        deadline = time.monotonic() + 5
        while h.core.ui_clients != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert h.core.ui_clients == 1
        base = h.core.snapshot()
        alarm = {"code": "x", "text": "y" * 1500}
        published = 0
        while h.core.ui_clients == 1 and published < 500:
            h.call_in_loop(h.server.publish, dict(base, mat_c=float(published), alarms=[alarm]))
            published += 1
        assert h.core.ui_clients == 0, "a kiosk that does not read still counts as a UI"
        assert h.server.client_count == 1          # not dropped yet: only not counted
        assert published < 200
        # it reads again: it counts again
        hung.sock.settimeout(0.5)
        deadline = time.monotonic() + 10
        while h.core.ui_clients != 1 and time.monotonic() < deadline:
            try:
                hung.sock.recv(1 << 20)
            except TimeoutError:
                pass
            h.call_in_loop(h.server.publish, dict(base, mat_c=-1.0 - published))
            published += 1
        assert h.core.ui_clients == 1
        hung.close()
    finally:
        h.close()
