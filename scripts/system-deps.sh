#!/usr/bin/env bash
# System packages the test suite needs beyond the Python venv: Prometheus (the server and
# `promtool`, for the alert/recording rule tests) and Redis (the feature-store tests).
# Idempotent: installs only what is missing. Runs as root as-is; as another user it uses sudo
# if present. Debian/Ubuntu (apt) only: elsewhere install the packages by hand.
set -euo pipefail

missing=()
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  missing+=(prometheus)
fi
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: missing ${missing[*]} and apt-get is not available; install them by hand" >&2
  exit 1
fi

apt_get=(apt-get)
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    apt_get=(sudo --non-interactive apt-get)
  else
    echo "system-deps: missing ${missing[*]}; run as root or install sudo" >&2
    exit 1
  fi
fi

echo "system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${apt_get[@]}" update -qq
"${apt_get[@]}" install -y -qq --no-install-recommends prometheus redis-server >/dev/null
command -v promtool >/dev/null && command -v prometheus >/dev/null && command -v redis-server >/dev/null
