#!/usr/bin/env bash
# Set up a virtual environment (.venv) with harstream, then run the live demo:
# the engine, a real-time replay of the test subjects, and the dashboard.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
if [ -z "${HARSTREAM_DATA:-}" ] && [ -d ../shared/data/hapt ]; then
  export HARSTREAM_DATA="$(cd .. && pwd)/shared/data/hapt"
fi
exec .venv/bin/harstream demo "$@"
