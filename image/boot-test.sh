#!/usr/bin/env bash
# make image-test: boots a copy of build/lumbarest-<version>-arm64.img with its own kernel and
# initrd (taken from the image's FAT partition) under qemu-system-aarch64 -M virt, the image as a
# virtio disk. The kiosk is masked; lumbarest-boot-test.service (disabled in the image, pulled in
# with systemd.wants= on the kernel command line) waits for lumbarest-appliance, prints
# `lumbarest status --json` to the serial console and powers off. Asserts: the appliance reached
# active, sensor_missing is latched, the heater is off; reports seconds from power-on.
#
# Environment: BOOT_TEST_TIMEOUT (seconds, default 600), IMG (image path),
# BOOT_TEST_KIOSK=1: do not mask the kiosk, give the guest a virtio-gpu display, and also assert
# that lumbarest-kiosk is active and connected to the appliance (cage + Kivy on Mesa's software
# renderer; slow under TCG), and save a screenshot of the virtual display as
# build/boot-test/kiosk-screen.png.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=$(sed -n 's/^version *= *"\(.*\)"/\1/p' pyproject.toml | head -1)
IMG=${IMG:-build/lumbarest-$VERSION-arm64.img}
T=build/boot-test
TIMEOUT=${BOOT_TEST_TIMEOUT:-600}
KIOSK=${BOOT_TEST_KIOSK:-0}

[ -f "$IMG" ] || { echo "no image at $IMG: run make image first" >&2; exit 1; }
for tool in qemu-system-aarch64 mcopy mtype sfdisk python3; do
  command -v "$tool" >/dev/null || { echo "$tool missing (apt-get install qemu-system-arm mtools fdisk)" >&2; exit 1; }
done

rm -rf "$T"
mkdir -p "$T"
cp --sparse=always "$IMG" "$T/disk.img"
# A bigger "card" than the image, so the first-boot growth of the data partition is exercised.
truncate -s +1G "$T/disk.img"

# The FAT partition: first partition's start sector.
start=$(sfdisk -d "$T/disk.img" | awk -F'[=,]' '/^.*img1 :/ {gsub(/ /, "", $2); print $2}')
[ -n "$start" ] || { echo "cannot read the partition table of $IMG" >&2; exit 1; }
fat="$T/disk.img@@$((start * 512))"
export MTOOLS_SKIP_CHECK=1
mtype -i "$fat" ::config.txt > "$T/config.txt"
kernel=$(sed -n 's/^kernel=//p' "$T/config.txt" | tail -1)
initrd=$(sed -n 's/^initramfs \([^ ]*\).*/\1/p' "$T/config.txt" | tail -1)
if [ -z "$kernel" ] || [ -z "$initrd" ]; then
  echo "config.txt names no kernel/initramfs" >&2; cat "$T/config.txt" >&2; exit 1
fi
mcopy -n -i "$fat" "::$kernel" "$T/vmlinuz"
mcopy -n -i "$fat" "::$initrd" "$T/initrd.img"
echo "boot-test: kernel $kernel, initrd $initrd"

append="root=LABEL=RASPIROOT rw console=ttyAMA0 panic=-1 net.ifnames=0"
append+=" systemd.wants=lumbarest-boot-test.service systemd.mask=serial-getty@ttyAMA0.service"
display=()
if [ "$KIOSK" = 1 ]; then
  # The monitor socket is for the screenshot of the kiosk (screendump) once it is connected.
  display=(-device virtio-gpu-pci -device virtio-tablet-pci -monitor "unix:$T/monitor.sock,server,nowait")
else
  append+=" systemd.mask=lumbarest-kiosk.service"
fi
append+=" systemd.condition-first-boot=false"

t0=$(date +%s.%N)
set +e
timeout --kill-after=10 "$TIMEOUT" qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 2 -m 1024 \
  -nographic -no-reboot -nic none "${display[@]}" \
  -kernel "$T/vmlinuz" -initrd "$T/initrd.img" -append "$append" \
  -drive if=none,file="$T/disk.img",format=raw,id=hd0 -device virtio-blk-pci,drive=hd0 \
  </dev/null 2>&1 | stdbuf -o0 tr '\r' '\n' | while IFS= read -r line; do
    [ -n "$line" ] && printf '%s %s\n' "$(date +%s.%N)" "$line"
    # The guest reports the kiosk connected: take a picture of the virtual display while the
    # guest is still printing its journal (cage keeps showing the UI until the power-off).
    if [ "$KIOSK" = 1 ] && [[ $line == *"LUMBAREST-BOOT-TEST kiosk="* ]]; then
      python3 - "$T/monitor.sock" "$PWD/$T/kiosk-screen.png" <<'PY' >&2 || true
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(f"screendump {sys.argv[2]} -f png\n".encode())
time.sleep(3)
PY
    fi
  done > "$T/console.log"
rc=${PIPESTATUS[0]}
set -e
t1=$(date +%s.%N)
echo "boot-test: qemu exited with $rc after $(python3 -c "print(round($t1 - $t0, 1))") s; console log: $T/console.log"
[ "$rc" -eq 124 ] && echo "boot-test: TIMEOUT after $TIMEOUT s" >&2

python3 - "$T/console.log" "$t0" "$KIOSK" <<'PY'
import json, sys
log, t0, kiosk = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "1"

lines = []
for raw in open(log, errors="replace", newline="\n"):
    ts, _, text = raw.rstrip("\n").partition(" ")
    try:
        lines.append((float(ts), text.replace("\r", "")))
    except ValueError:
        continue
def find(prefix):
    return [(ts, text[text.index(prefix) + len(prefix):].strip()) for ts, text in lines if prefix in text]
ok = True
def check(cond, what):
    global ok
    print(("PASS " if cond else "FAIL ") + what)
    ok = ok and cond
marker = find("LUMBAREST-BOOT-TEST appliance=")
check(bool(marker), "boot-test unit ran and printed its marker")
if marker:
    ts, rest = marker[0]
    state = rest.split()[0]
    check(state == "active", f"lumbarest-appliance reached active (state {state!r})")
    print(f"boot-test: appliance active {ts - t0:.1f} s after power-on (guest {rest.split('uptime=')[-1]} s uptime)")
for _, rest in find("LUMBAREST-BOOT-TEST root="):
    print("boot-test: root=" + rest)
    check(" overlay " in f" {rest.split('root=')[0]} " or rest.startswith("overlay"), "root file system is the read-only overlay")
    data = rest.split("data=")[-1].split()
    if data:
        size = data[0]
        grown = size.endswith("G") or (size.endswith("M") and float(size[:-1]) > 200)
        check(grown, f"data partition grown at first boot (size {size})")
for _, rest in find("LUMBAREST-BOOT-TEST boot="):
    print("boot-test: boot=" + rest)
    check(rest.startswith("ro,") or rest.startswith("ro "), "/boot/firmware mounted read-only")
    failed = [u for u in rest.split("failed=")[-1].strip().split(",") if u]
    check(not failed, f"no failed units ({failed})")
js = find("LUMBAREST-BOOT-TEST-JSON")
state = None
if js:
    try:
        state = json.loads(js[0][1])
    except ValueError:
        print("boot-test: status output was not JSON: " + js[0][1][:500])
check(isinstance(state, dict), "lumbarest status --json answered with a state object")
if isinstance(state, dict):
    codes = [a.get("code") for a in state.get("alarms", [])]
    check("sensor_missing" in codes, f"sensor_missing latched (alarms {codes})")
    check(state.get("heating") is False, f"heater off (heating={state.get('heating')}, duty={state.get('duty')}, relay_closed={state.get('relay_closed')})")
    check(state.get("mode") == "hardware", f"mode is hardware ({state.get('mode')!r})")
for _, rest in find("LUMBAREST-BOOT-TEST-LOG"):
    print("  | " + rest)
for _, rest in find("LUMBAREST-BOOT-TEST-DIAG"):
    print("  d " + rest)
if kiosk:
    k = find("LUMBAREST-BOOT-TEST kiosk=")
    check(bool(k), "kiosk check ran")
    if k:
        ts, rest = k[0]
        fields = dict(f.split("=", 1) for f in ("kiosk=" + rest).split())
        check(fields.get("kiosk") == "active", f"lumbarest-kiosk active ({fields.get('kiosk')})")
        check(int(fields.get("ui_clients", "0") or 0) >= 1, f"kiosk connected to the appliance (ui_clients={fields.get('ui_clients')})")
        # The guest waits a minute after the connection (for the screenshot): report the
        # uptime it connected at, moved onto the host's clock with the appliance marker.
        connected = float(fields.get("uptime", "nan") or "nan")
        if marker:
            m_ts, m_rest = marker[0]
            offset = (m_ts - t0) - float(m_rest.split("uptime=")[-1])
            print(f"boot-test: kiosk connected {connected + offset:.1f} s after power-on (guest {connected} s uptime)")
    import os
    shot = os.path.join(os.path.dirname(log), "kiosk-screen.png")
    print(f"boot-test: screenshot of the virtual display: {shot}" if os.path.exists(shot)
          else "boot-test: no screenshot of the virtual display")
    for _, rest in find("LUMBAREST-BOOT-TEST-KIOSK"):
        print("  k " + rest)
if not ok:
    print("boot-test: FAILED; last console lines:")
    for _, text in lines[-40:]:
        print("  > " + text)
sys.exit(0 if ok else 1)
PY
