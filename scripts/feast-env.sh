#!/usr/bin/env bash
# Feast's own virtual environment, for the `feast` tests and the feature benchmark.
#
# Feast pins an older prometheus-client than the scorer needs, so it cannot share `.venv`: it
# lives in `<repo>/.cache/feast-venv` (gitignored). Idempotent: a marker file records a finished
# install of the pinned version, so later runs return at once. Prints the venv path on stdout.
# Usage: scripts/feast-env.sh [VENV_DIR]     (env: PYTHON, default python3)
set -euo pipefail

FEAST_SPEC='feast==0.67.*'
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${1:-$here/.cache/feast-venv}
marker=$venv/.installed-$(echo "$FEAST_SPEC" | tr -c 'A-Za-z0-9.\n' '_')

if [[ -f $marker && -x $venv/bin/feast ]]; then
  echo "$venv"
  exit 0
fi

mkdir -p "$(dirname "$venv")"
# One installer at a time: parallel test sessions would otherwise race on the same directory.
exec 9>"$venv.lock"
flock 9
if [[ ! -f $marker || ! -x $venv/bin/feast ]]; then
  rm -rf "$venv"
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$FEAST_SPEC" >&2
  touch "$marker"
fi
echo "$venv"
