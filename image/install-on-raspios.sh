#!/usr/bin/env bash
# Installs the Lumbarest app and the same systemd units onto Raspberry Pi OS (64-bit, Bookworm or
# later). This is the supported path for the Raspberry Pi 5 (Debian's kernel cannot boot it) and
# for the official DSI touch displays (their overlays ship with Raspberry Pi OS only).
#
# Run on the Pi, as root, from a checkout of this repository:
#   sudo image/install-on-raspios.sh [--no-kiosk] [--wheel lumbarest-X.whl] [--read-only-root]
# The app goes to /opt/lumbarest/venv (with --system-site-packages, so Raspberry Pi OS's
# python3-lgpio is used); its PyPI dependencies are installed online, with the pins of
# pyproject.toml. Re-running it upgrades the app in place.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
VENV=/opt/lumbarest/venv
KIOSK=1
WHEEL=
READ_ONLY=0
while [ $# -gt 0 ]; do
  case $1 in
    --no-kiosk) KIOSK=0 ;;
    --wheel) WHEEL=$2; shift ;;
    --read-only-root) READ_ONLY=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" -eq 0 ] || { echo "run as root (sudo)" >&2; exit 1; }
[ "$(uname -m)" = aarch64 ] || { echo "expects 64-bit Raspberry Pi OS (aarch64)" >&2; exit 1; }
grep -qi raspberry /proc/device-tree/model 2>/dev/null || echo "warning: this does not look like a Raspberry Pi" >&2

say() { printf '== %s\n' "$*"; }

say "system packages"
pkgs=(python3-venv python3-pip python3-lgpio)
[ "$KIOSK" -eq 1 ] && pkgs+=(cage libgl1 libegl1 libgles2 libmtdev1 fonts-dejavu-core)
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${pkgs[@]}"

say "users, groups, runtime and journal settings"
install -D -m 0644 systemd/sysusers.d/lumbarest.conf /etc/sysusers.d/lumbarest.conf
install -D -m 0644 systemd/tmpfiles.d/lumbarest.conf /etc/tmpfiles.d/lumbarest.conf
install -D -m 0644 systemd/journald.conf.d/lumbarest.conf /etc/systemd/journald.conf.d/lumbarest.conf
install -D -m 0644 systemd/system.conf.d/lumbarest-watchdog.conf /etc/systemd/system.conf.d/lumbarest-watchdog.conf
install -D -m 0644 systemd/pam.d/lumbarest-kiosk /etc/pam.d/lumbarest-kiosk
# Raspberry Pi OS already has the gpio and spi groups and their udev rules; ours are equivalent.
install -D -m 0644 image/rootfs/etc/udev/rules.d/60-lumbarest-gpio.rules /etc/udev/rules.d/60-lumbarest-gpio.rules
systemd-sysusers /etc/sysusers.d/lumbarest.conf
systemd-tmpfiles --create /etc/tmpfiles.d/lumbarest.conf
{ udevadm control --reload-rules; udevadm trigger --subsystem-match=gpio --subsystem-match=spidev; } || true

say "configuration"
install -d -m 0755 /etc/lumbarest
[ -e /etc/lumbarest/appliance.toml ] || install -m 0644 image/rootfs/etc/lumbarest/appliance.toml /etc/lumbarest/appliance.toml

say "SPI on (raspi-config)"
if command -v raspi-config >/dev/null; then
  raspi-config nonint do_spi 0
else
  echo "raspi-config not found: add dtparam=spi=on to /boot/firmware/config.txt" >&2
fi

say "the app in $VENV"
if [ -z "$WHEEL" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip wheel --quiet --no-deps -w "$tmp" "$SRC"
  WHEEL=$(find "$tmp" -name 'lumbarest-*.whl' | head -1)
fi
[ -d "$VENV" ] || python3 -m venv --system-site-packages "$VENV"
extra="[pi]"
[ "$KIOSK" -eq 1 ] && extra="[kiosk,pi]"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --upgrade "${WHEEL}${extra}"
"$VENV/bin/python" -c 'import gpiozero, lgpio, gpiod, adafruit_max31865, appliance'
"$VENV/bin/python" -m hw.pi

say "units"
install -m 0644 systemd/lumbarest-appliance.service /etc/systemd/system/
install -m 0644 systemd/lumbarest-kiosk.service /etc/systemd/system/
# Installed, not enabled: a clinic enables it with /etc/lumbarest/bridge.toml (docs/fleet.md).
install -m 0644 systemd/lumbarest-bridge.service /etc/systemd/system/
systemctl daemon-reload
systemctl enable lumbarest-appliance.service
if [ "$KIOSK" -eq 1 ]; then
  # The kiosk replaces the desktop on this unit.
  systemctl enable lumbarest-kiosk.service
  systemctl set-default graphical.target
  for dm in lightdm.service gdm3.service; do
    systemctl disable "$dm" 2>/dev/null || true
  done
fi

if [ "$READ_ONLY" -eq 1 ] && command -v raspi-config >/dev/null; then
  say "read-only root (overlayfs) and read-only boot partition"
  # /var/lib/lumbarest is on the root file system here: with the overlay on, history is kept only
  # until reboot. Put it on a separate partition or USB stick first (see docs/image.md).
  raspi-config nonint do_overlayfs 0
  raspi-config nonint do_bootro 0 || true
fi

say "done: reboot to start (sudo systemctl start lumbarest-appliance to start now)"
