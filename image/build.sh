#!/usr/bin/env bash
# make image: builds build/lumbarest-<version>-arm64.img (+ .img.xz, .img.bmap, .sha256) for the
# Raspberry Pi 3/4/400/CM4/Zero 2 W from Debian trixie arm64 packages and PyPI wheels, with
# mmdebstrap and without loop devices. Needs root (chroot, binfmt, file ownership in the image).
# Every step is timed in build/image-build.log. See docs/image.md.
#
# Environment: LUMBAREST_MIRROR (Debian mirror), SOURCE_DATE_EPOCH (default: last commit time),
# LUMBAREST_COMPRESS=xz|zstd|none (default xz), JOBS (default: nproc).
# mmdebstrap hooks are single-quoted on purpose: mmdebstrap expands "$1" (the chroot).
# shellcheck disable=SC2016
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=$ROOT/build
CACHE=$BUILD/cache
WORK=$BUILD/image-work
LOG=$BUILD/image-build.log
SUITE=trixie
MIRROR=${LUMBAREST_MIRROR:-http://deb.debian.org/debian}
COMPRESS=${LUMBAREST_COMPRESS:-xz}
JOBS=${JOBS:-$(nproc)}
VERSION=$(sed -n 's/^version *= *"\(.*\)"/\1/p' pyproject.toml | head -1)
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH
NAME=lumbarest-$VERSION-arm64
IMG=$BUILD/$NAME.img
# Fixed identifiers make the image reproducible (and let fstab use labels).
DISK_ID=0x4c554d42
ROOT_UUID=5b1a9c1e-6d2f-4c58-9a0e-1c0ffee00001
DATA_UUID=5b1a9c1e-6d2f-4c58-9a0e-1c0ffee00002
BOOT_VOLID=4c554d42
BOOT_MIB=256
DATA_MIB=64

mkdir -p "$BUILD" "$CACHE/debs" "$CACHE/wheels" "$CACHE/wheels-built"
: > "$LOG"
log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$LOG" >&2; }
die() { log "ERROR: $*"; exit 1; }
STEP_TIMES=()
step() { # step NAME FUNCTION: runs it, logs how long it took
  local name=$1 t0 t1
  shift
  log "== $name"
  t0=$(date +%s)
  "$@"
  t1=$(date +%s)
  STEP_TIMES+=("$(printf '%-14s %5d s' "$name" $((t1 - t0)))")
  log "== $name done in $((t1 - t0)) s"
}
run() { # run a heavy command at low priority, its output to the log
  log "\$ $*"
  nice -n 10 "$@" >>"$LOG" 2>&1 || die "failed ($?): $* (see $LOG)"
}

[ "$(id -u)" -eq 0 ] || die "run as root (chroot, binfmt_misc, file ownership inside the image)"

host_deps() {
  local pkgs=(mmdebstrap qemu-user-static binfmt-support arch-test dosfstools mtools e2fsprogs
              fdisk xz-utils zstd qemu-system-arm device-tree-compiler bmap-tools python3-pip
              python3-venv debian-archive-keyring git)
  local missing=() p
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing host packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    run apt-get update
    run apt-get install -y --no-install-recommends "${missing[@]}"
  fi
  for p in mmdebstrap mkfs.vfat mcopy mkfs.ext4 sfdisk dtc; do
    command -v "$p" >/dev/null || die "$p not found"
  done
}

binfmt() {
  [ -e /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  update-binfmts --enable qemu-aarch64 >>"$LOG" 2>&1 || true
  [ "$(uname -m)" = aarch64 ] || arch-test arm64 >>"$LOG" 2>&1 || die "cannot run arm64 binaries (binfmt + qemu-user-static)"
}

PIP_TARGET=(--platform manylinux_2_39_aarch64 --platform manylinux_2_28_aarch64
            --platform manylinux2014_aarch64 --python-version 3.13 --implementation cp --abi cp313)

wheels() {
  # Every file is checked against image/requirements-arm64.txt (sha256); cached across builds.
  export PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1
  grep -v '^lgpio==' image/requirements-arm64.txt > "$WORK/req-wheels.txt"
  grep '^lgpio==' image/requirements-arm64.txt > "$WORK/req-lgpio.txt"
  run timeout 900 python3 -m pip download --require-hashes --no-deps --only-binary=:all: \
    "${PIP_TARGET[@]}" -d "$CACHE/wheels" -r "$WORK/req-wheels.txt"
  run timeout 300 python3 -m pip download --require-hashes --no-deps --no-binary=:all: \
    -d "$CACHE/sdists" -r "$WORK/req-lgpio.txt"
}

lgpio_wheel() {
  # lgpio has no cp313/aarch64 wheel on PyPI: compile the hash-checked sdist (statically linked,
  # PYPI=1) in a throw-away trixie arm64 chroot. The wheel is cached by the sdist's hash.
  local sdist key
  sdist=$(ls "$CACHE"/sdists/lgpio-*.tar.gz)
  key=$(sha256sum "$sdist" | cut -c1-16)
  if ls "$CACHE/wheels-built/$key"/lgpio-*.whl >/dev/null 2>&1; then
    log "lgpio wheel cached ($key)"
    return
  fi
  mkdir -p "$CACHE/wheels-built/$key"
  run timeout 2400 mmdebstrap --arch=arm64 --variant=apt --mode=root \
    --include=gcc,libc6-dev,swig,python3-dev,python3-setuptools,python3-pip,python3-wheel \
    --skip=download/empty --skip=essential/unlink \
    --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
    --setup-hook="sync-in $CACHE/debs /var/cache/apt/archives/" \
    --customize-hook="copy-in $sdist $ROOT/image/requirements-arm64.txt /tmp" \
    --customize-hook='chroot "$1" sh -c "cd /tmp && grep ^lgpio== requirements-arm64.txt > r.txt && PYPI=1 PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip wheel --no-index --no-deps --no-build-isolation --require-hashes --find-links /tmp -w /tmp/out -r r.txt"' \
    --customize-hook="sync-out /tmp/out $CACHE/wheels-built/$key" \
    --customize-hook="sync-out /var/cache/apt/archives $CACHE/debs" \
    "$SUITE" /dev/null "$MIRROR"
  ls "$CACHE/wheels-built/$key"/lgpio-*.whl >/dev/null || die "lgpio wheel not built"
  rm -f "$CACHE"/debs/lock; rm -rf "$CACHE/debs/partial"
}

app_wheel() {
  # The app from the working tree (tracked and untracked-but-not-ignored files), built as a wheel.
  rm -rf "$WORK/src" "$WORK/app"
  mkdir -p "$WORK/src" "$WORK/app"
  git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} cp --parents -P {} "$WORK/src/" 2>/dev/null || true
  # ls-files lists deleted-but-tracked files too: cp skips them (errors ignored above).
  run timeout 600 python3 -m pip wheel --no-deps -w "$WORK/app" "$WORK/src"
  rm -rf "$WORK/src"
  ls "$WORK"/app/lumbarest-*.whl >/dev/null || die "app wheel not built"
}

PACKAGES=(
  # boot: Debian's kernel and the Raspberry Pi firmware packaging
  linux-image-arm64 raspi-firmware initramfs-tools zstd systemd-sysv udev kmod dbus libpam-systemd
  # busybox: overlayroot's initramfs script needs grep, which initramfs-tools only has via busybox
  busybox
  # read-only root, data partition growth, watchdog, time, network for maintenance
  overlayroot fdisk e2fsprogs systemd-timesyncd ifupdown- openssh-server
  # the app: Python 3.13 and Debian's Kivy / APScheduler
  python3 python3-venv python3-kivy python3-apscheduler python3-tzlocal
  # the kiosk session: cage (Wayland kiosk compositor) + Mesa (V3D on the Pi 4)
  cage libgl1-mesa-dri libegl1 libgles2 fonts-dejavu-core
  ca-certificates
)

rootfs() {
  # The Debian part (slow: packages are configured under qemu-user). LUMBAREST_REUSE_ROOTFS=1
  # reuses the previous base when the package list has not changed (for iterating on the app or
  # the customization); a normal build always starts from scratch.
  local include key
  include=$(printf '%s\n' "${PACKAGES[@]}" | grep -v -- '-$' | paste -sd, -)
  key=$(printf '%s %s %s' "$SUITE" "$MIRROR" "$include" | sha256sum | cut -c1-16)
  if [ "${LUMBAREST_REUSE_ROOTFS:-0}" = 1 ] && [ "$(cat "$WORK/rootfs-base.key" 2>/dev/null)" = "$key" ]; then
    log "reusing $WORK/rootfs-base ($key)"
    return
  fi
  rm -rf "$WORK/rootfs-base" "$WORK/rootfs-base.key"
  run timeout 5400 mmdebstrap --arch=arm64 --variant=minbase --mode=root \
    --components="main non-free-firmware" --include="$include" \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --skip=download/empty --skip=essential/unlink \
    --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
    --setup-hook="sync-in $CACHE/debs /var/cache/apt/archives/" \
    --customize-hook="sync-out /var/cache/apt/archives $CACHE/debs" \
    --customize-hook='rm -f "$1"/var/cache/apt/archives/*.deb' \
    "$SUITE" "$WORK/rootfs-base" "$MIRROR"
  rm -f "$CACHE"/debs/lock; rm -rf "$CACHE/debs/partial"
  echo "$key" > "$WORK/rootfs-base.key"
}

unmount_chroot() {
  local m
  for m in dev/pts dev sys proc; do
    mountpoint -q "$WORK/rootfs/$m" && umount -l "$WORK/rootfs/$m"
  done
  return 0
}

customize() {
  # The app and the system integration (image/customize.sh), on a copy of the base.
  # LUMBAREST_REUSE_CUSTOMIZED=1 (developers only) keeps a completed customization as it is.
  if [ "${LUMBAREST_REUSE_CUSTOMIZED:-0}" = 1 ] && [ -e "$WORK/rootfs.done" ]; then
    log "reusing the customized $WORK/rootfs"
    return
  fi
  rm -rf "$WORK/rootfs" "$WORK/rootfs.done"
  cp -a "$WORK/rootfs-base" "$WORK/rootfs"
  trap unmount_chroot EXIT
  mount -t proc proc "$WORK/rootfs/proc"
  mount -t sysfs sysfs "$WORK/rootfs/sys"
  mount --bind /dev "$WORK/rootfs/dev"
  mount --bind /dev/pts "$WORK/rootfs/dev/pts"
  run "$ROOT/image/customize.sh" "$WORK/rootfs" "$WORK" "$ROOT" "$SOURCE_DATE_EPOCH"
  unmount_chroot
  trap - EXIT
  touch "$WORK/rootfs.done"
}

check_dt() {
  # The firmware applies the overlay at boot; here fdtoverlay applies it to the Pi 4 tree the
  # kernel ships, to catch a path that does not exist.
  local dtb
  dtb=$(find "$WORK/rootfs/boot/firmware" -name bcm2711-rpi-4-b.dtb | head -1)
  [ -n "$dtb" ] || die "bcm2711-rpi-4-b.dtb missing from /boot/firmware"
  fdtoverlay -i "$dtb" -o "$WORK/check.dtb" "$WORK/rootfs/boot/firmware/overlays/lumbarest-spi0.dtbo" >>"$LOG" 2>&1 \
    || die "lumbarest-spi0.dtbo does not apply to $dtb"
  dtc -I dtb -O dts -o "$WORK/check.dts" "$WORK/check.dtb" 2>/dev/null
  grep -q 'rohm,dh2228fv' "$WORK/check.dts" || die "spidev node missing after overlay"
  log "overlay lumbarest-spi0 applies to $(basename "$dtb")"
  grep -q '^dtparam=spi=on' "$WORK/rootfs/boot/firmware/config.txt" || die "config.txt lacks dtparam=spi=on"
  grep -q 'root=LABEL=RASPIROOT' "$WORK/rootfs/boot/firmware/cmdline.txt" || die "cmdline.txt lacks root=LABEL=RASPIROOT"
}

assemble() {
  local r=$WORK/rootfs fat=$WORK/boot.vfat rootimg=$WORK/root.ext4 dataimg=$WORK/data.ext4
  local used root_mib kuid jgid total_mib
  rm -f "$fat" "$rootimg" "$dataimg" "$IMG"
  # Boot partition (FAT32), files with SOURCE_DATE_EPOCH times.
  find "$r/boot/firmware" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  run mkfs.vfat -F 32 -n RASPIFIRM -i "$BOOT_VOLID" -C "$fat" $((BOOT_MIB * 1024))
  run env MTOOLS_SKIP_CHECK=1 mcopy -s -p -m -i "$fat" "$r"/boot/firmware/* ::
  # The firmware files live on the FAT partition only; / keeps the empty mount point.
  mkdir -p "$WORK/firmware-copy"
  rm -rf "$WORK/firmware-copy"; mv "$r/boot/firmware" "$WORK/firmware-copy"; mkdir -p "$r/boot/firmware"
  # Root file system: content + 20 % + 128 MiB headroom (updates happen on the data card via
  # a new image; the root is read-only in operation).
  used=$(du -sm --apparent-size "$r" | cut -f1)
  root_mib=$(( used + used / 5 + 128 ))
  run env E2FSPROGS_FAKE_TIME="$SOURCE_DATE_EPOCH" mkfs.ext4 -q -F -L RASPIROOT -U "$ROOT_UUID" \
    -E "hash_seed=$ROOT_UUID,root_owner=0:0" -m 1 -d "$r" "$rootimg" "${root_mib}M"
  mv "$r/boot/firmware" "$r/boot/firmware.empty"; mv "$WORK/firmware-copy" "$r/boot/firmware"; rmdir "$r/boot/firmware.empty"
  # Data partition: lumbarest/ (appliance state), journal/ (persistent journal), ssh/ (host key).
  kuid=$(awk -F: '$1=="lumbarest"{print $3":"$4}' "$r/etc/passwd")
  jgid=$(awk -F: '$1=="systemd-journal"{print $3}' "$r/etc/group")
  rm -rf "$WORK/data"; mkdir -p "$WORK/data/lumbarest" "$WORK/data/journal" "$WORK/data/ssh"
  chown "$kuid" "$WORK/data/lumbarest"; chmod 0750 "$WORK/data/lumbarest"
  chown "0:$jgid" "$WORK/data/journal"; chmod 2755 "$WORK/data/journal"
  chmod 0700 "$WORK/data/ssh"
  find "$WORK/data" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  run env E2FSPROGS_FAKE_TIME="$SOURCE_DATE_EPOCH" mkfs.ext4 -q -F -L LUMBADATA -U "$DATA_UUID" \
    -E "hash_seed=$DATA_UUID,root_owner=0:0" -m 1 -d "$WORK/data" "$dataimg" "${DATA_MIB}M"
  # MBR (the Pi 3 boot ROM reads only MBR): 4 MiB gap, boot, root, data (last, so it can grow).
  total_mib=$(( 4 + BOOT_MIB + root_mib + DATA_MIB ))
  truncate -s "${total_mib}M" "$IMG"
  sfdisk --quiet "$IMG" >>"$LOG" 2>&1 <<SFDISK || die "sfdisk failed"
label: dos
label-id: $DISK_ID
unit: sectors

start=$((4 * 2048)), size=$((BOOT_MIB * 2048)), type=c, bootable
start=$(((4 + BOOT_MIB) * 2048)), size=$((root_mib * 2048)), type=83
start=$(((4 + BOOT_MIB + root_mib) * 2048)), size=$((DATA_MIB * 2048)), type=83
SFDISK
  run dd if="$fat" of="$IMG" bs=1M seek=4 conv=notrunc,sparse status=none
  run dd if="$rootimg" of="$IMG" bs=1M seek=$((4 + BOOT_MIB)) conv=notrunc,sparse status=none
  run dd if="$dataimg" of="$IMG" bs=1M seek=$((4 + BOOT_MIB + root_mib)) conv=notrunc,sparse status=none
  rm -f "$fat" "$rootimg" "$dataimg"
  touch -d "@$SOURCE_DATE_EPOCH" "$IMG"
  log "image $IMG: $(du -h --apparent-size "$IMG" | cut -f1) (root ${root_mib} MiB, ${used} MiB used)"
}

compress() {
  rm -f "$IMG.xz" "$IMG.zst" "$IMG.bmap"
  if command -v bmaptool >/dev/null; then
    run bmaptool create -o "$IMG.bmap" "$IMG"
  fi
  case $COMPRESS in
    xz) run xz -T "$JOBS" -6 --keep --force "$IMG" ;;
    zstd) run zstd -T"$JOBS" -19 --long=27 -q --keep --force "$IMG" -o "$IMG.zst" ;;
    none) ;;
    *) die "LUMBAREST_COMPRESS must be xz, zstd or none" ;;
  esac
  (cd "$BUILD" && sha256sum "$NAME".img* | grep -v '\.sha256$' > "$NAME.sha256")
}

T0=$(date +%s)
log "building $NAME (suite $SUITE, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH, mirror $MIRROR)"
mkdir -p "$WORK"
step host-deps host_deps
step binfmt binfmt
step wheels wheels
step lgpio-wheel lgpio_wheel
step app-wheel app_wheel
step rootfs rootfs
step customize customize
step check-dt check_dt
step assemble assemble
step compress compress
T1=$(date +%s)
{
  echo "== summary: $NAME"
  printf '%s\n' "${STEP_TIMES[@]}"
  printf '%-14s %5d s\n' total $((T1 - T0))
  # shellcheck disable=SC2012
  ls -l "$BUILD/$NAME".* | awk '{printf "%12d  %s\n", $5, $9}'
} | tee -a "$LOG"
