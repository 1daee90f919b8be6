#!/usr/bin/env bash
# Issue 15's runtime ratio on the hosts most users have: bench/runtime-startup.sh (`run` of
# `true`: hako-runtime, runc and crun side by side in one hyperfine run) inside the VM stage's
# pure cgroup v2 guest (scripts/vm). TCG is ~50x slower than the host: only the ratios of one
# run mean something.
#
#   sudo bench/vm-runtime.sh                              # RUNS=20 WARMUP=3 VARIANTS="plain memory"
#   CARGO_TARGET_DIR=/work/ci/target bench/vm-runtime.sh  # another build's release binaries
#   HAKO_BIN=/work/coord/bin-main bench/vm-runtime.sh     # a directory of release binaries
#
# Needs release hako-runtime and hako-fixture in $CARGO_TARGET_DIR/release (or target/release):
# `bash -c '. scripts/lib.sh; build_release'`. A failed guest's job dir (console log) is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
[ "$(id -u)" -eq 0 ] || { echo "the benchmark needs root" >&2; exit 1; }
job=$(mktemp -d /tmp/hako-vm-bench.XXXXXX)
if [ -n "${HAKO_BIN:-}" ]; then
    # The guest sees the job dir as /job and the host's / as its own.
    mkdir -p "$job/target/release"
    for b in hako-runtime hako-fixture; do
        ln -s "$(realpath "$HAKO_BIN/$b")" "$job/target/release/$b"
    done
    TARGET=$job/target
    GUEST_TARGET=/job/target
else
    TARGET=$(realpath "$(target_dir)")
    GUEST_TARGET=$TARGET
fi
for b in hako-runtime hako-fixture; do
    [ -x "$TARGET/release/$b" ] || {
        echo "no $TARGET/release/$b: build first (bash -c '. scripts/lib.sh; build_release')" >&2
        exit 1
    }
done
ensure_packages "${HAKO_PACKAGES[@]}" python3 hyperfine
bash scripts/vm/vm.sh setup
cat > "$job/job.sh" <<JOB
cd '$PWD'
export CARGO_TARGET_DIR='$GUEST_TARGET' RUNS='${RUNS:-20}' WARMUP='${WARMUP:-3}' \
    VARIANTS='${VARIANTS:-plain memory}' BENCH_DIR=/tmp/hako-bench
echo "@@ vm: cgroup \$(stat -f -c %T /sys/fs/cgroup) runc \$(runc --version | head -1) crun \$(crun --version | head -1)"
bash bench/runtime-startup.sh > /job/bench.log 2>&1
JOB
rc=0
bash scripts/vm/vm.sh boot v2 "$job" || rc=$?
cat "$job/bench.log" 2>/dev/null || true
if [ "$rc" = 0 ]; then
    rm -rf "$job"
else
    echo "guest job dir: $job (status $rc)"
fi
exit "$rc"
