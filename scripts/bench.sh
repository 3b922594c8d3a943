#!/usr/bin/env bash
# Builds the release binary and runs `amc-collector bench` (all scenarios, both backends by
# default). Without --postgres-url the binary starts its own throwaway PostgreSQL 15 cluster.
# Extra arguments go to the bench command, e.g. `bash scripts/bench.sh --quick --backend sqlite`.
set -euo pipefail

cd "$(dirname "$0")/.."
cargo build --release --quiet
exec ./target/release/amc-collector bench "$@"
