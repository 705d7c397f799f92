"""A private Mosquitto broker on a free loopback port, for the tests and ``make bench``.

Debian's ``mosquitto`` (installed by tools/setup-host.sh) with a generated configuration in a
temporary directory: loopback only, persistence in that directory (so a restart keeps retained
messages and persistent sessions, as a clinic's broker would), and optionally a TLS listener
with a CA, server and client certificates made by :func:`make_test_pki` (openssl).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from appliance.devrun import stop_process

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def mosquitto_available() -> bool:
    return os.access(MOSQUITTO, os.X_OK) and shutil.which("openssl") is not None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class TestPki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path        # a CA that signed nothing here: a bridge trusting it must not connect


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_test_pki(directory: Path) -> TestPki:
    """A throw-away CA (EC P-256, 1 day), a server certificate for 127.0.0.1/localhost and a
    client certificate with CN ``room-tls``, all made with the openssl command."""
    d = directory
    d.mkdir(parents=True, exist_ok=True)
    for name in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "1",
                 "-subj", f"/CN=Lumbarest test {name}",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    ext = d / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, subject, extfile in (("server", "/CN=127.0.0.1", "server.ext"),
                                   ("client", "/CN=room-tls", "client.ext")):
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "1", "-extfile", extfile,
                 cwd=d)
    for key in d.glob("*.key"):
        key.chmod(0o600)
    return TestPki(ca=d / "ca.pem", server_cert=d / "server.pem", server_key=d / "server.key",
                   client_cert=d / "client.pem", client_key=d / "client.key",
                   other_ca=d / "other-ca.pem")


class Mosquitto:
    """``mosquitto -c <generated conf>``: :meth:`start`, :meth:`stop`, :meth:`restart`."""

    def __init__(self, directory: Path, *, port: int | None = None, tls_port: int | None = None,
                 pki: TestPki | None = None, users: dict[str, str] | None = None,
                 require_certificate: bool = True):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.tls_port = tls_port if tls_port or pki is None else free_port()
        self.pki = pki
        self.conf = self.dir / "mosquitto.conf"
        self.log = self.dir / "mosquitto.log"
        self.proc: subprocess.Popen | None = None
        lines = [
            # As root mosquitto would switch to its own user, which cannot read this directory.
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            "per_listener_settings false",
            # Anonymous clients are let in (the tests' own subscribers); a client that gives a
            # user name must give its password (with ``users``).
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {self.dir}/",
            "autosave_interval 1",
            "max_queued_messages 10000",
            "log_type error", "log_type warning", "log_type notice",
            f"listener {self.port} 127.0.0.1",
        ]
        if users:
            passwd = self.dir / "passwd"
            for i, (user, password) in enumerate(users.items()):
                subprocess.run([shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd",
                                *(["-c"] if i == 0 else []), "-b", str(passwd), user, password],
                               check=True, capture_output=True, timeout=30)
            lines.append(f"password_file {passwd}")
        if pki is not None:
            lines += [f"listener {self.tls_port} 127.0.0.1",
                      f"cafile {pki.ca}", f"certfile {pki.server_cert}",
                      f"keyfile {pki.server_key}", "tls_version tlsv1.2"]
            if require_certificate:
                lines += ["require_certificate true", "use_identity_as_username true"]
        self.conf.write_text("\n".join(lines) + "\n")

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        return f"mqtts://127.0.0.1:{self.tls_port}"

    def start(self, timeout_s: float = 10.0) -> "Mosquitto":
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}:\n"
                                   + self.log.read_text()[-2000:])
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("mosquitto did not listen:\n" + self.log.read_text()[-2000:])

    def stop(self) -> None:
        """SIGTERM: mosquitto writes its persistence file and exits."""
        if self.proc is not None:
            stop_process(self.proc)

    def restart(self) -> None:
        self.stop()
        self.start()
