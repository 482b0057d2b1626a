#!/usr/bin/env bash
# Install ctxeval into .venv and build its images. Safe to run again: everything is cached.
#   - Python: a virtual environment in .venv with ctxeval and its test, ray and inspect extras.
#   - Offline base image: needs mmdebstrap (or debootstrap); installed with apt when run as root.
#   - Images: `ctxeval build` makes the base image (registry if reachable, else offline) and
#     every bundle image, tagged by input hash.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test,ray,inspect,rl]'
# Arize Phoenix (the trace viewer the tests export to) in its own venv: it pins clashing dependencies.
.venv/bin/python scripts/phoenix_server.py install

# Headless Chromium renders the HTML report in the tests (Debian's chromium package).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing chromium (renders the HTML report in the tests)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: no chromium; the report rendering test needs it (sudo apt-get install chromium)" >&2
  fi
fi

if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  if ! command -v mmdebstrap >/dev/null 2>&1 && ! command -v debootstrap >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "setup: installing mmdebstrap (for the offline base image)" >&2
      DEBIAN_FRONTEND=noninteractive apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
    else
      echo "setup: no mmdebstrap/debootstrap; without a registry the base image cannot be built" \
           "(sudo apt-get install mmdebstrap)" >&2
    fi
  fi
  .venv/bin/ctxeval build
else
  echo "setup: no Docker engine answers; only the local (not isolated) backend is available" >&2
fi
