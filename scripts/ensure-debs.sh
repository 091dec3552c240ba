#!/usr/bin/env sh
# Install the Debian packages named as arguments unless their command (or package) is present.
# Needs root or sudo; says what it installs, and fails loudly if it cannot.
set -eu
missing=""
for pkg in "$@"; do
  if command -v "$pkg" >/dev/null 2>&1 || [ -x "/usr/sbin/$pkg" ] || dpkg -s "$pkg" >/dev/null 2>&1; then
    continue
  fi
  missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0
echo "installing Debian packages:$missing"
if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
  echo "need root (or sudo) to install:$missing" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null || true
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
# Debian starts these as services on install; the tests and benchmarks run their own.
for svc in redis-server webdis nginx; do
  case " $missing " in *" $svc "*) $SUDO service "$svc" stop >/dev/null 2>&1 || true ;; esac
done
