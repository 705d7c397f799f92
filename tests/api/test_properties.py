"""Property tests: whatever a client sends, the server answers with a result or a documented
error, stays up, and a refused request changes nothing."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.server import INTERNAL_ERROR
from tests.api.conftest import ServerHarness
from tests.api.rawclient import Raw

KNOWN_CODES = {-32700, -32600, -32601, -32602, -32001, -32002, -32003, -32004, -32005}
METHODS = ["status", "subscribe", "unsubscribe", "session.start", "session.pause",
           "session.resume", "session.stop", "session.extend", "fault.acknowledge",
           "history.sessions", "history.faults", "history.trace", "history.audit",
           "history.counters", "settings.get", "settings.set", "auth.check",
           "system.selftest", "sim.inject", "sim.patient", "nope", ""]
KEYS = ["program", "level", "code", "pin", "limit", "offset", "session_id", "changes", "role",
        "fault", "on", "client", "volume", "x"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) |
    st.floats(allow_nan=False, allow_infinity=False) |
    st.sampled_from(["standard", "high", "1234", "7391", "kiosk", "rtd_open", "off", "low",
                     "clinic", "service", "", "x" * 100]) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) |
    st.dictionaries(st.sampled_from(KEYS), children, max_size=3),
    max_leaves=8)

params = st.none() | json_values | st.dictionaries(st.sampled_from(KEYS), json_values,
                                                   max_size=4)


def observable(h: ServerHarness) -> tuple:
    core = h.core
    return (core.state, core.program, core.level, core.planned_s, tuple(core.alarms),
            core.patient_on, json.dumps(core._settings, sort_keys=True))


def test_random_requests(short_tmp):
    h = ServerHarness(short_tmp, tick_s=None, rate_per_s=10 ** 6, burst=10 ** 6)
    raw = Raw(h.socket)
    # PIN checks cost a scrypt each; keep lockouts from mattering by using a generous store.
    h.pins.max_tries = 10 ** 9
    try:
        @settings(max_examples=200, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow])
        @given(method=st.sampled_from(METHODS), params=params,
               with_id=st.sampled_from([1, "x", None, "omit"]))
        def check(method, params, with_id):
            msg = {"jsonrpc": "2.0", "method": method}
            if params is not None:
                msg["params"] = params
            msg["id"] = 7 if with_id == "omit" else with_id
            before = observable(h)
            reply = raw.request(msg)
            assert reply is not None, "connection closed"
            assert reply["jsonrpc"] == "2.0" and reply["id"] == msg["id"]
            if "error" in reply:
                assert reply["error"]["code"] in KNOWN_CODES, reply
                assert reply["error"]["code"] != INTERNAL_ERROR
                assert reply["error"]["message"]
                assert observable(h) == before, (msg, reply)
            else:
                assert "result" in reply
        check()
        assert raw.request({"jsonrpc": "2.0", "id": 1, "method": "status"})["result"]
    finally:
        raw.close()
        h.close()


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200))
def test_random_bytes_never_crash(data):
    # A fresh server would be slow per example; one shared server is made lazily.
    h = _shared()
    raw = Raw(h.socket)
    try:
        line = data.replace(b"\n", b" ")
        raw.send_line(line)
        reply = raw.recv() if line.strip() else None       # blank lines are ignored
        assert reply is None or reply.get("jsonrpc") == "2.0"
        if reply is not None and "error" in reply:
            assert reply["error"]["code"] in KNOWN_CODES
        # still serving
        assert raw.request({"jsonrpc": "2.0", "id": 2, "method": "status"})["id"] == 2
    finally:
        raw.close()


_SHARED: list = []


def _shared() -> ServerHarness:
    if not _SHARED:
        import atexit
        import tempfile
        from pathlib import Path
        h = ServerHarness(Path(tempfile.mkdtemp(prefix="lr-")), tick_s=None,
                          rate_per_s=10 ** 6, burst=10 ** 6)
        _SHARED.append(h)
        atexit.register(h.close)
    return _SHARED[0]


SETTING_VALUES = st.one_of(json_values, st.dictionaries(
    st.sampled_from(["low", "medium", "high", "off", "quick", "standard", "new"]), json_values,
    max_size=3))


def test_random_requests_on_the_real_core(real_appliance):
    """The real core behind the server: no request may end in an internal error."""
    raw = Raw(real_appliance.socket)
    try:
        @settings(max_examples=150, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow,
                                         HealthCheck.function_scoped_fixture])
        @given(method=st.sampled_from(METHODS), params=params,
               changes=st.dictionaries(st.sampled_from(
                   ["volume", "brightness", "sleep_min", "language", "unit_name", "levels",
                    "programs", "clinic_pin", "max_setpoint_c", "x"]), SETTING_VALUES,
                   max_size=3))
        def check(method, params, changes):
            if method == "settings.set":
                params = {"pin": "1234", "changes": changes}
            msg = {"jsonrpc": "2.0", "id": 1, "method": method}
            if params is not None:
                msg["params"] = params
            reply = raw.request(msg)
            assert reply is not None, "connection closed"
            if "error" in reply:
                assert reply["error"]["code"] in KNOWN_CODES, (msg, reply)
        check()
    finally:
        raw.close()
