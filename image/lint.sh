#!/usr/bin/env bash
# make verify-units (CI): systemd-analyze verify on every unit we ship, shellcheck on the image
# scripts. Quick, no build. The units name programs that only exist on the appliance
# (/opt/lumbarest/venv/bin/..., /usr/bin/cage, /usr/lib/lumbarest/...): each is verified as a copy
# in which those paths point at a stub executable; everything else is checked as written.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0

command -v systemd-analyze >/dev/null || { echo "systemd-analyze missing (apt-get install systemd)" >&2; exit 1; }
command -v shellcheck >/dev/null || { echo "shellcheck missing (apt-get install shellcheck)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/units" "$tmp/bin"
printf '#!/bin/sh\nexit 0\n' > "$tmp/bin/stub"
chmod +x "$tmp/bin/stub"
units=(systemd/*.service image/rootfs/usr/lib/systemd/system/*.service)
for u in "${units[@]}"; do
  sed -E -e "s#/opt/lumbarest/venv/bin/[A-Za-z0-9_.-]+#$tmp/bin/stub#g" \
         -e "s#/usr/lib/lumbarest/[A-Za-z0-9_.-]+#$tmp/bin/stub#g" \
         -e "s#/usr/bin/cage#$tmp/bin/stub#g" "$u" > "$tmp/units/$(basename "$u")"
done
# Any message (unknown key, bad value, missing dependency) counts as a failure.
out=$(cd "$tmp/units" && SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no "$tmp"/units/*.service 2>&1) || fail=1
# shellcheck disable=SC2016  # a literal $container
out=$(grep -v -e 'Failed to read \$container' -e 'PR_SET_MM_ARG_START' <<<"$out" || true)
if [ -n "$out" ]; then
  echo "systemd-analyze verify:"; echo "$out"; fail=1
else
  echo "systemd-analyze verify: ${#units[@]} units ok"
fi

sh_scripts=(image/rootfs/usr/lib/lumbarest/* image/rootfs/etc/initramfs-tools/hooks/*
            image/rootfs/etc/initramfs-tools/scripts/*/*)
scripts=(image/*.sh "${sh_scripts[@]}")
if shellcheck -x -s bash image/*.sh && shellcheck -x "${sh_scripts[@]}"; then
  echo "shellcheck: ${#scripts[@]} scripts ok"
else
  fail=1
fi
exit "$fail"
