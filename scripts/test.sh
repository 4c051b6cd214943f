#!/usr/bin/env bash
# Set up a virtual environment (.venv) with harstream and its test tools, then lint,
# type-check, check the import contracts and run the test suite against the data in ../shared/data/hapt
# (or $HARSTREAM_DATA).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# cluster: Ray, for `harstream cluster` and its test with a real local Ray (tests/test_cluster_ray.py)
.venv/bin/python -m pip install -q -e '.[test,web,cluster]'
# the browser test of `harstream web` drives the distribution's headless Chromium (CI runs as root)
if ! command -v chromium >/dev/null; then
    apt-get update && apt-get install -y chromium chromium-driver
fi
export HARSTREAM_DATA="${HARSTREAM_DATA:-$(cd .. && pwd)/shared/data/hapt}"
.venv/bin/ruff check harstream training replay tests examples scripts
.venv/bin/mypy
# the layers and the import rules of pyproject.toml [tool.importlinter] (docs/architecture.md)
.venv/bin/lint-imports
# pytest exits 5 when it collects no test: that is a failure here too.
.venv/bin/python -m pytest -q --durations=15 --doctest-modules harstream training replay tests
