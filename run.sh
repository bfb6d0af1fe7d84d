#!/usr/bin/env bash
# Run Handoff on the embedded default: a Temporal dev server on a SQLite file, the worker
# and the HTTP API, all under ./.handoff. Ctrl-C stops everything cleanly.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap
exec .venv/bin/handoff up "$@"
