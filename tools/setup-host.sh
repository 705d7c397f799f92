#!/usr/bin/env bash
# Makes a fresh Debian machine able to build the venv and run the tests: Python venv support, and
# for the Kivy kiosk Xvfb plus the GL/SDL libraries the PyPI Kivy wheel loads at run time.
# Installs what is missing when run as root; otherwise prints the one apt-get line to run.
set -euo pipefail

packages=(python3-venv python3-pip xvfb xauth libgl1 libegl1 libgles2 libmtdev1 libsdl2-2.0-0
          libsdl2-image-2.0-0 libsdl2-mixer-2.0-0 libsdl2-ttf-2.0-0 fonts-dejavu-core
          systemd shellcheck sqlite3 mosquitto openssl)

# pyenv and other non-Debian Pythons bring their own venv; only ask apt for what is really missing.
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if python3 -c 'import venv, ensurepip' 2>/dev/null; then
  filtered=()
  for pkg in "${missing[@]}"; do
    case "$pkg" in python3-venv|python3-pip) ;; *) filtered+=("$pkg") ;; esac
  done
  missing=("${filtered[@]+"${filtered[@]}"}")
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  echo "Installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "Some system packages are missing. Run once: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
