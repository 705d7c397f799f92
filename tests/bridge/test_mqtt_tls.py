"""TLS: a CA made in the test (openssl), a broker that requires client certificates, a bridge
that trusts the CA and presents its certificate — and one that trusts another CA and must not
connect."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.api.conftest import REPO, ApplianceProcess, appliance_available
from tests.bridge.conftest import BridgeProcess, Subscriber, bridge_config, needs_mosquitto
from tools.mosquitto import Mosquitto, make_test_pki

pytestmark = [needs_mosquitto,
              pytest.mark.skipif(not appliance_available(), reason="no appliance")]


def test_bridge_over_tls_with_a_client_certificate(tls_broker, short_tmp):
    pki = tls_broker.pki
    app = ApplianceProcess(short_tmp).start()
    good = bad = None
    sub = Subscriber(tls_broker.port, ["lumbarest/+/state", "lumbarest/+/availability"])
    try:
        good = BridgeProcess(short_tmp / "good", app.socket, bridge_config(
            tls_broker.tls_url, "room-tls", ca_file=str(pki.ca),
            client_cert=str(pki.client_cert), client_key=str(pki.client_key))).start()
        bad = BridgeProcess(short_tmp / "bad", app.socket, bridge_config(
            tls_broker.tls_url, "room-untrusted", ca_file=str(pki.other_ca),
            client_cert=str(pki.client_cert), client_key=str(pki.client_key))).start()
        state = sub.wait_for(lambda m: m[0] == "lumbarest/room-tls/state", 10)
        assert state is not None, good.log_tail()
        assert json.loads(state[1])["unit_id"] == "room-tls"
        assert sub.wait_for(lambda m: m[0] == "lumbarest/room-tls/availability"
                            and m[1] == b"online", 5)
        # The bridge that does not trust the broker's CA publishes nothing, and says why.
        assert sub.wait_for(lambda m: "room-untrusted" in m[0], 1.5) is None
        assert "certificate verify failed" in bad.log_tail() or "CERTIFICATE_VERIFY_FAILED" \
            in bad.log_tail(), bad.log_tail()

        # lumbarest fleet over TLS with the same files.
        (short_tmp / "fleet.toml").write_text(bridge_config(
            tls_broker.tls_url, "viewer", ca_file=str(pki.ca), client_cert=str(pki.client_cert),
            client_key=str(pki.client_key)))
        result = subprocess.run([sys.executable, "-m", "appliance.cli", "fleet", "--config",
                                 str(short_tmp / "fleet.toml")], cwd=REPO, capture_output=True,
                                text=True, timeout=20)
        assert result.returncode == 0, result.stderr
        assert "(room-tls)" in result.stdout and "online" in result.stdout
    finally:
        sub.close()
        for bridge in (good, bad):
            if bridge is not None:
                bridge.stop()
        app.stop()


def test_bridge_over_tls_with_user_and_password(short_tmp):
    pki = make_test_pki(short_tmp / "pki")
    broker = Mosquitto(short_tmp / "broker", pki=pki, users={"room-pw": "s3cret-pw"},
                       require_certificate=False).start()
    app = ApplianceProcess(short_tmp).start()
    (short_tmp / "good.password").write_text("s3cret-pw\n")
    (short_tmp / "bad.password").write_text("wrong\n")
    bridges = []
    sub = Subscriber(broker.port, ["lumbarest/+/state"])
    try:
        for name, unit_id in (("good", "room-pw"), ("bad", "room-wrong-pw")):
            bridges.append(BridgeProcess(short_tmp / name, app.socket, bridge_config(
                broker.tls_url, unit_id, ca_file=str(pki.ca), username="room-pw",
                password_file=str(short_tmp / f"{name}.password"))).start())
        assert sub.wait_for(lambda m: m[0] == "lumbarest/room-pw/state", 10), \
            bridges[0].log_tail()
        assert sub.wait_for(lambda m: "room-wrong-pw" in m[0], 1.5) is None
        assert "broker refused" in bridges[1].log_tail(), bridges[1].log_tail()
    finally:
        sub.close()
        for bridge in bridges:
            bridge.stop()
        app.stop()
        broker.stop()


def test_plain_broker_refused_without_allow_insecure(short_tmp):
    (short_tmp / "bridge.toml").write_text('broker = "mqtt://127.0.0.1:1883"\n')
    result = subprocess.run([sys.executable, "-m", "bridge.main", "--config",
                             str(short_tmp / "bridge.toml")], cwd=REPO, capture_output=True,
                            text=True, timeout=20)
    assert result.returncode == 2 and "allow_insecure" in result.stderr
