#!/usr/bin/env bash
# The long soak (issue 12): CYCLES cycles of mixed work from WORKERS processes at once on
# one store, then the exact leak check (see crates/hako-cli/tests/soak.rs). The short
# version of the same test runs in `scripts/test.sh`.
#
#   tests/soak/soak.sh [CYCLES] [WORKERS] [SECONDS]
#                       default 1000 cycles, 4 workers, no time budget; with SECONDS no
#                       cycle starts after that long (the leak check runs as usual)
#
# Needs root. Prints the cycles, the time taken, failures, the time per kind of operation,
# and the long-lived processes' fds and memory (a container's shim, hako serve) before and
# after; exits non-zero on any failure or leftover.
set -euo pipefail
cd "$(dirname "$0")/../.."
cycles="${1:-1000}"
workers="${2:-4}"
seconds="${3:-0}"
echo "==> soak: $cycles cycles x $workers workers ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
cargo build -p hako-cli -p hako-shim -p hako-runtime -p hako-init -p hako-net --bins
HAKO_SOAK_CYCLES="$cycles" HAKO_SOAK_WORKERS="$workers" HAKO_SOAK_SECONDS="$seconds" \
    cargo nextest run -p hako-cli --test soak --no-capture \
    --profile soak
