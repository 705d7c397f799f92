"""The systemd units and the SD-image scripts: what CI can check without building an image.

`systemd-analyze verify` on every unit we ship (skipped only where systemd-analyze is absent),
the properties the safety case relies on (watchdog, fail-safe stop, unprivileged users,
hardening), and shellcheck on the image scripts (skipped where shellcheck is absent).
"""

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SYSTEMD = REPO / "systemd"
IMAGE = REPO / "image"
ROOTFS = IMAGE / "rootfs"
APPLIANCE = SYSTEMD / "lumbarest-appliance.service"
KIOSK = SYSTEMD / "lumbarest-kiosk.service"
IMAGE_UNITS = sorted((ROOTFS / "usr/lib/systemd/system").glob("*.service"))
ALL_UNITS = sorted(SYSTEMD.glob("*.service")) + IMAGE_UNITS
VENV_BIN = "/opt/lumbarest/venv/bin/"


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit file as {section: {key: [values in order]}} (systemd allows repeated keys)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path}: key outside a section: {line}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def words(section: dict[str, list[str]], key: str) -> list[str]:
    return " ".join(section.get(key, [])).split()


def one(section: dict[str, list[str]], key: str) -> str:
    values = section.get(key)
    assert values, f"{key}= is not set"
    return values[-1]


def seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value):
        total += float(number) * units[unit or "s"]
    return total


@pytest.fixture(scope="module")
def appliance():
    return parse_unit(APPLIANCE)


@pytest.fixture(scope="module")
def kiosk():
    return parse_unit(KIOSK)


# --- systemd-analyze verify ------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_units_pass_systemd_analyze_verify(tmp_path):
    """Every unit verifies without a single message. The programs the units start exist only on
    the appliance, so they are pointed at a stub executable in a copy; nothing else changes."""
    stub = tmp_path / "stub"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    units = tmp_path / "units"
    units.mkdir()
    for unit in ALL_UNITS:
        text = unit.read_text()
        text = re.sub(r"/opt/lumbarest/venv/bin/[\w.-]+", str(stub), text)
        text = re.sub(r"/usr/lib/lumbarest/[\w.-]+", str(stub), text)
        text = text.replace("/usr/bin/cage", str(stub))
        (units / unit.name).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *sorted(str(p) for p in units.iterdir())],
        cwd=units, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SYSTEMD_LOG_LEVEL": "warning"},
    )
    messages = [line for line in (result.stdout + result.stderr).splitlines()
                if line.strip() and "Failed to read $container" not in line
                and "PR_SET_MM_ARG_START" not in line]
    assert result.returncode == 0 and not messages, "\n".join(messages)


def test_verify_copies_only_rewrite_program_paths():
    """The rewriting above must not hide anything: the only absolute programs the units name are
    the app's (venv), cage and our helper scripts, which the image build installs."""
    for unit in ALL_UNITS:
        for section in parse_unit(unit).values():
            for key in ("ExecStart", "ExecStartPre", "ExecStartPost", "ExecStop", "ExecStopPost"):
                for value in section.get(key, []):
                    program = value.lstrip("-@:+!").split()[0]
                    assert program.startswith(
                        (VENV_BIN, "/usr/bin/cage", "/usr/lib/lumbarest/", "/bin/systemctl")
                    ), f"{unit.name}: {key}={value}"
    for helper in (ROOTFS / "usr/lib/lumbarest").iterdir():
        assert helper.stat().st_mode & 0o111, f"{helper} is not executable"


# --- the appliance unit ----------------------------------------------------------------------

def test_appliance_notifies_and_is_watched(appliance):
    service = appliance["Service"]
    assert one(service, "Type") == "notify"
    assert 1 <= seconds(one(service, "WatchdogSec")) <= 10
    assert one(service, "Restart") == "on-failure"
    unit = appliance["Unit"]
    assert int(one(unit, "StartLimitBurst")) >= 1
    assert seconds(one(unit, "StartLimitIntervalSec")) > 0


def test_appliance_turns_the_heater_off_after_every_stop(appliance):
    service = appliance["Service"]
    start = one(service, "ExecStart").split()
    post = one(service, "ExecStopPost").split()
    assert start[0] == VENV_BIN + "lumbarest-appliance"
    assert post[0] == start[0] and "--failsafe-off" in post[1:]
    # A "-" prefix would also be fine for systemd, but the stop hook is not optional: keep it bare.
    assert not one(service, "ExecStopPost").startswith("-")
    assert "--config" in start and "/etc/lumbarest/appliance.toml" in start


def test_appliance_runs_unprivileged_with_gpio_and_spi(appliance):
    service = appliance["Service"]
    assert one(service, "User") == "lumbarest"
    assert one(service, "Group") == "lumbarest"
    assert {"gpio", "spi"} <= set(words(service, "SupplementaryGroups"))
    assert one(service, "StateDirectory") == "lumbarest"
    assert one(service, "RuntimeDirectory") == "lumbarest"
    assert one(service, "RuntimeDirectoryMode") in ("0750", "0770", "750", "770")
    assert "/var/lib/lumbarest" in words(service, "ReadWritePaths")


def test_appliance_hardening(appliance):
    service = appliance["Service"]
    expected = {
        "ProtectSystem": "strict", "NoNewPrivileges": "yes", "PrivateTmp": "yes",
        "ProtectHome": "yes", "ProtectKernelModules": "yes", "ProtectKernelTunables": "yes",
        "ProtectControlGroups": "yes", "RestrictSUIDSGID": "yes", "LockPersonality": "yes",
        "PrivateNetwork": "yes", "DevicePolicy": "closed",
    }
    for key, value in expected.items():
        assert one(service, key) == value, key
    assert service.get("CapabilityBoundingSet") == [""], "no capabilities at all"
    assert set(words(service, "RestrictAddressFamilies")) == {"AF_UNIX"}
    allowed = {v.split()[0] for v in service.get("DeviceAllow", [])}
    assert allowed == {"char-gpiochip", "char-spi"}
    # Ahead of the UI, but not real-time.
    assert int(one(service, "Nice")) < 0
    assert "CPUSchedulingPolicy" not in service or one(service, "CPUSchedulingPolicy") in ("other", "batch")
    assert "User" in service and one(service, "User") != "root"


# --- the kiosk unit --------------------------------------------------------------------------

def test_kiosk_is_an_unprivileged_restarting_client(kiosk):
    unit, service = kiosk["Unit"], kiosk["Service"]
    assert one(service, "User") == "lumbarest-kiosk" != "root"
    assert one(service, "Restart") == "always"
    assert "lumbarest-appliance.service" in words(unit, "After")
    assert "lumbarest-appliance.service" in words(unit, "Wants")
    assert {"lumbarest", "video", "render", "input"} <= set(words(service, "SupplementaryGroups"))
    assert one(service, "NoNewPrivileges") == "yes"
    assert one(service, "ProtectSystem") == "strict"
    assert service.get("CapabilityBoundingSet") == [""]
    exec_start = one(service, "ExecStart").split()
    assert exec_start[0] == "/usr/bin/cage" and exec_start[-1] == VENV_BIN + "lumbarest-kiosk"
    # The socket's directory is not writable for the kiosk: the socket is named explicitly.
    env = " ".join(service.get("Environment", []))
    assert "LUMBAREST_SOCKET=/run/lumbarest/appliance.sock" in env
    assert one(service, "PAMName") == "lumbarest-kiosk"
    assert (SYSTEMD / "pam.d" / "lumbarest-kiosk").exists()


def test_sysusers_match_the_units(appliance, kiosk):
    lines = [line.split() for line in (SYSTEMD / "sysusers.d/lumbarest.conf").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    users = {fields[1] for fields in lines if fields[0] == "u"}
    groups = {fields[1] for fields in lines if fields[0] == "g"} | users
    members = {(fields[1], fields[2]) for fields in lines if fields[0] == "m"}
    assert {one(appliance["Service"], "User"), one(kiosk["Service"], "User")} <= users
    for group in words(appliance["Service"], "SupplementaryGroups"):
        assert group in groups and ("lumbarest", group) in members
    for group in ("lumbarest", "video", "render", "input"):
        assert ("lumbarest-kiosk", group) in members


def test_system_drop_ins():
    tmpfiles = (SYSTEMD / "tmpfiles.d/lumbarest.conf").read_text()
    assert re.search(r"^d /run/lumbarest +07[57]0 lumbarest lumbarest", tmpfiles, re.M)
    journald = parse_unit(SYSTEMD / "journald.conf.d/lumbarest.conf")["Journal"]
    assert seconds(one(journald, "SyncIntervalSec")) >= 60
    assert one(journald, "SystemMaxUse").endswith("M") and int(one(journald, "SystemMaxUse")[:-1]) <= 256
    manager = parse_unit(SYSTEMD / "system.conf.d/lumbarest-watchdog.conf")["Manager"]
    # bcm2835_wdt takes at most 15 s: the kernel refuses a longer timeout, which would leave that
    # phase (running, rebooting, kexec) unguarded. Every watchdog setting must be set and fit.
    assert 1 <= seconds(one(manager, "RuntimeWatchdogSec")) <= 15
    assert 1 <= seconds(one(manager, "RebootWatchdogSec")) <= 15
    for key, values in manager.items():
        if "Watchdog" in key and key != "WatchdogDevice":
            assert all(1 <= seconds(v) <= 15 for v in values), (key, values)


# --- the image's configuration ---------------------------------------------------------------

def test_image_ships_hardware_mode_config():
    config = tomllib.loads((ROOTFS / "etc/lumbarest/appliance.toml").read_text())
    assert config["mode"] == "hardware"


def test_image_mounts_and_firmware_config():
    fstab = [line.split() for line in (ROOTFS / "etc/fstab").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    by_mount = {fields[1]: fields for fields in fstab}
    # Read-only comes from overlayroot (below), which mounts the partition itself read-only; "/"
    # is the tmpfs overlay and must stay writable, or every StateDirectory= service fails.
    assert "ro" not in by_mount["/"][3].split(",") and by_mount["/"][5] == "0"
    assert "ro" in by_mount["/boot/firmware"][3].split(",")
    assert "x-systemd.growfs" in by_mount["/data"][3].split(",")
    assert by_mount["/var/lib/lumbarest"][0] == "/data/lumbarest"
    assert 'overlayroot="tmpfs:recurse=0"' in (ROOTFS / "etc/overlayroot.conf").read_text()
    custom = (ROOTFS / "etc/default/raspi-firmware-custom").read_text().splitlines()
    assert "dtparam=spi=on" in custom and "dtoverlay=lumbarest-spi0" in custom
    assert (IMAGE / "dt/lumbarest-spi0.dts").exists()
    sshd = (ROOTFS / "etc/ssh/sshd_config.d/lumbarest.conf").read_text()
    assert "PasswordAuthentication no" in sshd


def test_boot_test_unit_is_never_enabled():
    unit = parse_unit(ROOTFS / "usr/lib/systemd/system/lumbarest-boot-test.service")
    assert "Install" not in unit
    customize = (IMAGE / "customize.sh").read_text()
    assert "lumbarest-boot-test" not in customize


def test_wheels_are_pinned_with_hashes():
    lines = [line for line in (IMAGE / "requirements-arm64.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines
    names = set()
    for line in lines:
        assert re.fullmatch(r"[a-z0-9-]+==[\w.]+ --hash=sha256:[0-9a-f]{64}", line), line
        names.add(line.split("==")[0])
    assert {"gpiozero", "adafruit-circuitpython-max31865", "lgpio"} <= names
    # These come from Debian (python3-kivy, python3-apscheduler) through --system-site-packages.
    assert not names & {"kivy", "apscheduler"}


def test_image_carries_what_blinka_imports_on_a_pi_and_nothing_unused():
    """Blinka maps the Pi 4 to its bcm2711 pin module, which imports gpiod (issue 15); rpi-lgpio
    is not what it uses there."""
    pins = dict(line.split(" ")[0].split("==") for line in
                (IMAGE / "requirements-arm64.txt").read_text().splitlines()
                if line.strip() and not line.startswith("#"))
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["pi"]
    for requirement in extra:
        name, version = requirement.split("==")
        assert pins[name] == version, name
    assert "rpi-lgpio" not in pins
    customize = (IMAGE / "customize.sh").read_text()
    check = re.search(r"^in_root (.*) /opt/lumbarest/venv/bin/python -m hw\.pi$", customize, re.M)
    assert check and set(check.group(1).split()) == {"BLINKA_FORCEBOARD=RASPBERRY_PI_4B",
                                                     "BLINKA_FORCECHIP=BCM2XXX"}
    lock = (IMAGE / "lock-wheels.sh").read_text()
    assert all(requirement in lock for requirement in extra)


def test_appliance_unit_never_lets_blinka_ask_to_install(appliance):
    assert "BLINKA_SKIP_DEPENDENCY_CHECK=1" in words(appliance["Service"], "Environment")


PI4 = {"BLINKA_FORCEBOARD": "RASPBERRY_PI_4B", "BLINKA_FORCECHIP": "BCM2XXX"}


def run_blinka_check(tmp_path, extra_env=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLINKA_")}
    env.update(PI4, **(extra_env or {}))
    return subprocess.run([sys.executable, "-m", "hw.pi"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_blinka_imports_board_busio_digitalio_on_a_forced_pi4(tmp_path):
    result = run_blinka_check(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "RASPBERRY_PI_4B" in result.stdout


def test_the_blinka_check_fails_without_gpiod(tmp_path):
    """What the image build catches: the same check with gpiod missing must fail."""
    (tmp_path / "gpiod.py").write_text('raise ModuleNotFoundError("No module named \'gpiod\'", name="gpiod")\n')
    result = run_blinka_check(tmp_path, {"PYTHONPATH": str(tmp_path)})
    assert result.returncode != 0 and "gpiod" in result.stderr


# --- shellcheck ------------------------------------------------------------------------------

SCRIPTS = sorted(IMAGE.glob("*.sh")) + sorted((ROOTFS / "usr/lib/lumbarest").iterdir())


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_image_scripts_pass_shellcheck(script):
    result = subprocess.run(["shellcheck", "-x", str(script)], cwd=script.parent,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_scripts_are_strict():
    for script in IMAGE.glob("*.sh"):
        assert "set -euo pipefail" in script.read_text(), script.name


# --- the MQTT bridge unit --------------------------------------------------------------------

BRIDGE = SYSTEMD / "lumbarest-bridge.service"


def test_bridge_unit_has_a_network_but_nothing_else(appliance):
    unit = parse_unit(BRIDGE)
    service = unit["Service"]
    assert one(service, "User") == "lumbarest-bridge" != "root"
    assert "lumbarest" in words(service, "SupplementaryGroups"), "reads the appliance socket"
    assert set(words(service, "RestrictAddressFamilies")) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert "PrivateNetwork" not in service
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "PrivateDevices": "yes", "RestrictSUIDSGID": "yes",
                       "ProtectKernelModules": "yes", "ProtectKernelTunables": "yes"}.items():
        assert one(service, key) == value, key
    assert service.get("CapabilityBoundingSet") == [""]
    assert "ReadWritePaths" not in service, "the bridge writes nothing"
    # The appliance keeps no network at all.
    assert one(appliance["Service"], "PrivateNetwork") == "yes"
    env = " ".join(service.get("Environment", []))
    assert "LUMBAREST_SOCKET=/run/lumbarest/appliance.sock" in env


def test_bridge_starts_only_when_the_file_names_a_broker(tmp_path):
    unit = parse_unit(BRIDGE)
    assert one(unit["Unit"], "ConditionPathExists") == "/etc/lumbarest/bridge.toml"
    condition = one(unit["Service"], "ExecCondition").split()
    assert condition[0] == VENV_BIN + "lumbarest-bridge" and "--check-config" in condition
    assert one(unit["Service"], "ExecStart").split()[0] == VENV_BIN + "lumbarest-bridge"
    from bridge.main import check_config
    toml = tmp_path / "bridge.toml"
    assert check_config(toml) == 1, "no file: skipped"
    toml.write_text("# a clinic has not set up a broker\n")
    assert check_config(toml) == 1, "no broker: skipped"
    toml.write_text('broker = "mqtt://broker.lan"\n')
    assert check_config(toml) == 255, "plain TCP without allow_insecure: a failed unit"
    toml.write_text('broker = "mqtts://broker.lan"\n')
    assert check_config(toml) == 0


def test_bridge_is_installed_but_not_enabled_in_the_image():
    customize = (IMAGE / "customize.sh").read_text()
    assert 'install -m 0644 "$SRC"/systemd/*.service' in customize
    enable = customize[customize.index("systemctl enable"):].split("\n\n")[0]
    assert "lumbarest-bridge" not in enable.split("systemctl set-default")[0]
    users = (SYSTEMD / "sysusers.d/lumbarest.conf").read_text().split()
    assert "lumbarest-bridge" in users
    names = {line.split("==")[0] for line in (IMAGE / "requirements-arm64.txt").read_text().splitlines()
             if line and not line.startswith("#")}
    assert "paho-mqtt" in names
