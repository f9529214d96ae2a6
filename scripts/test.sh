#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: unit and integration suites (real
# CRIU, real Debian programs, network namespaces) through CTest, then a bounded fuzzing run of
# the trace reader.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/build.sh
RELIVE_FUZZ_SECONDS=${RELIVE_FUZZ_SECONDS:-60} bash scripts/fuzz.sh
ctest --test-dir build --output-on-failure -j"${RELIVE_TEST_JOBS:-2}" --timeout 600
