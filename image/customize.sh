#!/usr/bin/env bash
# mmdebstrap customize hook (run by build.sh on the host): $1 = the arm64 root file system,
# $2 = build work directory, $3 = repository root, $4 = SOURCE_DATE_EPOCH. Installs the app and the system integration.
set -euo pipefail
R=$1 WORK=$2 SRC=$3 SOURCE_DATE_EPOCH=$4
say() { printf '   customize: %s\n' "$*"; }
in_root() {
  chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/root \
    DEBIAN_FRONTEND=noninteractive SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" "$@"
}

say "static files and units"
cp -r --no-preserve=ownership "$SRC/image/rootfs/." "$R/"
install -m 0644 "$SRC"/systemd/*.service "$R/usr/lib/systemd/system/"
install -D -m 0644 "$SRC/systemd/sysusers.d/lumbarest.conf" "$R/usr/lib/sysusers.d/lumbarest.conf"
install -D -m 0644 "$SRC/systemd/tmpfiles.d/lumbarest.conf" "$R/usr/lib/tmpfiles.d/lumbarest.conf"
install -D -m 0644 "$SRC/systemd/journald.conf.d/lumbarest.conf" "$R/usr/lib/systemd/journald.conf.d/lumbarest.conf"
install -D -m 0644 "$SRC/systemd/system.conf.d/lumbarest-watchdog.conf" "$R/usr/lib/systemd/system.conf.d/lumbarest-watchdog.conf"
install -D -m 0644 "$SRC/systemd/pam.d/lumbarest-kiosk" "$R/etc/pam.d/lumbarest-kiosk"
install -d -m 0755 "$R/data" "$R/var/lib/lumbarest" "$R/var/log/journal"
echo lumbarest > "$R/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tlumbarest\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$R/etc/hosts"

say "users and groups (sysusers)"
in_root systemd-sysusers
# No password anywhere: root's is '*' (no password matches; SSH keys still work when enabled).
in_root usermod -p '*' root

say "Python venv with the pinned wheels and the app"
rm -rf "$R/tmp/wheels"; mkdir -p "$R/tmp/wheels"
cp "$SRC"/build/cache/wheels/*.whl "$R/tmp/wheels/"
# shellcheck disable=SC2012
lgpio=$(ls "$SRC"/build/cache/wheels-built/*/lgpio-*.whl | head -1)
cp "$lgpio" "$R/tmp/wheels/"
cp "$WORK"/app/lumbarest-*.whl "$R/tmp/wheels/"
{ grep -v '^lgpio==' "$SRC/image/requirements-arm64.txt"
  # lgpio: compiled by build.sh from the hash-pinned sdist; pin the wheel it produced.
  echo "lgpio==$(basename "$lgpio" | cut -d- -f2) --hash=sha256:$(sha256sum "$lgpio" | cut -d' ' -f1)"
} > "$R/tmp/wheels/requirements.txt"
in_root python3 -m venv --system-site-packages /opt/lumbarest/venv
in_root /opt/lumbarest/venv/bin/pip install --quiet --disable-pip-version-check --no-index --no-deps \
  --require-hashes --find-links /tmp/wheels -r /tmp/wheels/requirements.txt
in_root sh -c '/opt/lumbarest/venv/bin/pip install --quiet --disable-pip-version-check --no-index --no-deps /tmp/wheels/lumbarest-*.whl'
# pip check over everything importable; Debian's own packages may carry requirements Debian
# satisfies differently (python3-kivy lists kivy-garden), so only problems of the venv's
# distributions (ours and the pinned wheels) fail the build.
check=$(in_root /opt/lumbarest/venv/bin/pip check 2>&1) || true
echo "$check"
ours=$(in_root /opt/lumbarest/venv/bin/pip list --format=freeze --path /opt/lumbarest/venv/lib/python3.13/site-packages \
  | cut -d= -f1 | tr '[:upper:]_' '[:lower:]-')
bad=$(while read -r name _; do
  n=$(tr '[:upper:]_' '[:lower:]-' <<<"$name")
  grep -qx -- "$n" <<<"$ours" && echo "$name"
done <<<"$check" || true)
[ -z "$bad" ] || { echo "pip check failed for: $bad" >&2; exit 1; }
in_root /opt/lumbarest/venv/bin/python -c 'import gpiozero, apscheduler, lgpio, gpiod, adafruit_max31865, paho.mqtt.client, appliance, bridge.main; print("imports ok")'
# Blinka as it runs on the Pi 4: board, busio and digitalio with the board forced (under qemu the
# chroot cannot look like a Pi). Its bcm2711 pin module imports gpiod; a missing or unsupported
# backend fails the build here, not at the first power-on. The dependency check stays on here
# (it rejects an unsupported gpiod version); the unit switches it off at run time.
in_root BLINKA_FORCEBOARD=RASPBERRY_PI_4B BLINKA_FORCECHIP=BCM2XXX /opt/lumbarest/venv/bin/python -m hw.pi
in_root /opt/lumbarest/venv/bin/pip freeze --all > "$WORK/pip-freeze.txt"
install -D -m 0644 "$SRC/docs/image.md" "$R/opt/lumbarest/share/doc/image.md" 2>/dev/null || true
install -D -m 0644 "$SRC/docs/fleet.md" "$R/opt/lumbarest/share/doc/fleet.md" 2>/dev/null || true
rm -rf "$R/tmp/wheels"

say "units: enable the appliance, kiosk and first-boot helpers; SSH off"
# lumbarest-bridge.service is installed above with the other units and deliberately not enabled:
# a clinic turns it on with /etc/lumbarest/bridge.toml and `systemctl enable --now` (docs/fleet.md).
in_root systemctl enable lumbarest-appliance.service lumbarest-kiosk.service \
  lumbarest-ssh.service lumbarest-journal-prune.service \
  systemd-networkd.service systemd-timesyncd.service
in_root systemctl disable ssh.service ssh.socket 2>/dev/null || true
in_root systemctl set-default graphical.target
# The root is overlayroot's overlay, set up read-write by the initramfs, and overlayroot rewrites
# the root line of /etc/fstab with the overlay's lowerdir/upperdir options. systemd-remount-fs
# then runs "mount -o remount /" with them, which overlayfs refuses (exit 32): a failed unit on
# every boot, with nothing for it to do here.
in_root systemctl mask systemd-remount-fs.service

say "firmware: root by label, SPI on, our overlay"
sed -i -e 's/^#\?ROOTPART=.*/ROOTPART=LABEL=RASPIROOT/' -e 's/^#\?CMA=.*/CMA=0/' "$R/etc/default/raspi-firmware"
grep -q '^ROOTPART=LABEL=RASPIROOT' "$R/etc/default/raspi-firmware" || echo 'ROOTPART=LABEL=RASPIROOT' >> "$R/etc/default/raspi-firmware"
grep -q '^CMA=0' "$R/etc/default/raspi-firmware" || echo 'CMA=0' >> "$R/etc/default/raspi-firmware"
install -d "$R/usr/lib/lumbarest/overlays"
dtc -q -@ -I dts -O dtb -o "$R/usr/lib/lumbarest/overlays/lumbarest-spi0.dtbo" "$SRC/image/dt/lumbarest-spi0.dts"

say "boot partition contents (config.txt, cmdline.txt, kernel, initrd, DTBs)"
printf '' > "$R/etc/machine-id"
# overlayroot reads /etc/overlayroot.conf from the real root at boot.
# Rebuilt for our hook (the data partition grows in the initramfs, image/rootfs/etc/initramfs-tools).
in_root update-initramfs -u -k all
in_root dpkg-reconfigure raspi-firmware
install -D -m 0644 "$R/usr/lib/lumbarest/overlays/lumbarest-spi0.dtbo" "$R/boot/firmware/overlays/lumbarest-spi0.dtbo"

say "version, manifest, clean-up"
git -C "$SRC" describe --always --dirty 2>/dev/null > "$R/etc/lumbarest/image-version" || echo unknown > "$R/etc/lumbarest/image-version"
# shellcheck disable=SC2016
in_root dpkg-query -W -f='${Package} ${Version}\n' > "$WORK/dpkg-manifest.txt"
rm -rf "$R"/var/lib/apt/lists/* "$R"/var/cache/apt/*.bin "$R"/var/cache/apt/archives/*.deb "$R"/var/cache/debconf/*-old "$R"/var/lib/dpkg/*-old
rm -rf "$R"/tmp/* "$R"/var/tmp/* "$R"/root/.cache
find "$R/var/log" -type f -delete
rm -f "$R/etc/ssh"/ssh_host_*
printf '' > "$R/etc/machine-id"
