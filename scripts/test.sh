#!/usr/bin/env bash
# The whole test suite: installs what is missing (cmake, redis-server, wrk), then runs
# every unit, property and end-to-end test. Usage: ./scripts/test.sh [cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo test --all-targets "$@"
