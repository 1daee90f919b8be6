#!/usr/bin/env bash
# Startup benchmark: `run` of `true` in a busybox bundle (create, start, wait, delete) for
# hako-runtime, runc and crun, side by side in ONE hyperfine invocation, inside ONE private
# mount namespace where /sys/fs/cgroup/unified is unmounted (crun cannot run beside the
# empty cgroup2 of this hybrid host; that way all three see the same cgroup layout).
#
#   bench/runtime-startup.sh                     build release if needed, then measure
#   RUNS=200 bench/runtime-startup.sh            more runs (default 100, 10 warmup)
#   RUNTIMES="runc crun" bench/runtime-startup.sh
#   HAKO_BEFORE=/path/to/older/hako-runtime RUNTIMES="hako-before hako-runtime runc" \
#       bench/runtime-startup.sh                two hako builds side by side (a change's cost)
#   VARIANTS="plain seccomp memory" bench/runtime-startup.sh   (the default: all three)
#     plain    the busybox bundle as is
#     seccomp  plus Docker's default seccomp profile (compiled BPF cached after the first run)
#     memory   plus a 64 MiB memory limit
#
# Results: bench/results/runtime-startup.{json,md}; medians and ratios are printed.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" != "--inner" ]; then
    . scripts/lib.sh
    [ "$(id -u)" -eq 0 ] || { echo "the benchmark needs root" >&2; exit 1; }
    ensure_packages "${HAKO_PACKAGES[@]}" python3
    TARGET="$(target_dir)"
    if [ ! -x "$TARGET/release/hako-fixture" ] || [ ! -x "$TARGET/release/hako-runtime" ]; then
        step "build (release)"
        build_release
    fi
    export HAKO_RUNTIME="${HAKO_RUNTIME:-$TARGET/release/hako-runtime}"
    export BENCH_DIR="${BENCH_DIR:-/tmp/hako-bench}"
    rm -rf "$BENCH_DIR"
    mkdir -p "$BENCH_DIR" bench/results
    "$TARGET/release/hako-fixture" bundle "$BENCH_DIR/bundle-plain" -- true >/dev/null
    "$TARGET/release/hako-fixture" bundle "$BENCH_DIR/bundle-seccomp" --seccomp-default -- true >/dev/null
    "$TARGET/release/hako-fixture" bundle "$BENCH_DIR/bundle-memory" --memory 67108864 -- true >/dev/null
    # A private mount namespace: the umount below is invisible to the rest of the host.
    exec unshare --mount --propagation private bash "$0" --inner
fi

# ---- inside the private mount namespace ----
if grep -q ' /sys/fs/cgroup/unified ' /proc/self/mountinfo; then
    umount /sys/fs/cgroup/unified
fi
# Medians and ratios of one hyperfine JSON export.
report() {
python3 - "$1" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
med = {r["command"]: r["median"] * 1000 for r in results}
cpu = {r["command"]: (r["user"] + r["system"]) * 1000 for r in results}
print()
print(f"{'runtime':<14}{'median':>10}{'mean':>10}{'stddev':>9}{'vs crun':>9}{'vs runc':>9}"
      f"{'cpu':>10}{'cpu/crun':>10}")
for r in results:
    name, m = r["command"], r["median"] * 1000
    ratio = lambda base: f"{m / med[base]:.2f}x" if base in med else "-"
    cratio = f"{cpu[name] / cpu['crun']:.2f}x" if "crun" in cpu else "-"
    print(f"{name:<14}{m:>8.2f}ms{r['mean']*1000:>8.2f}ms{r['stddev']*1000:>7.2f}ms"
          f"{ratio('crun'):>9}{ratio('runc'):>9}{cpu[name]:>8.2f}ms{cratio:>10}")
print("\n(ratio < 1.00x means faster than the baseline; cpu = mean user+system time, which a")
print(" loaded machine disturbs far less than wall time; JSON and markdown in bench/results/)")
PY
}

for VARIANT in ${VARIANTS:-plain seccomp memory}; do
    BUNDLE="$BENCH_DIR/bundle-$VARIANT"
    declare -A BIN=(
        [hako-runtime]="$HAKO_RUNTIME"
        [hako-before]="${HAKO_BEFORE:-}"
        [runc]="$(command -v runc || true)"
        [crun]="$(command -v crun || true)"
    )
    args=()
    names=()
    for rt in ${RUNTIMES:-hako-runtime runc crun}; do
        bin="${BIN[$rt]:-}"
        if [ -z "$bin" ] || [ ! -x "$bin" ]; then
            echo "skip $rt: binary not found" >&2
            continue
        fi
        root="$BENCH_DIR/state-$rt"
        id="bench-$rt-$VARIANT"
        # One trial run: a runtime that cannot run the bundle is reported and left out.
        if ! out=$("$bin" --root "$root" run --bundle "$BUNDLE" "$id-trial" 2>&1); then
            echo "skip $rt: trial run failed: $(echo "$out" | tail -n 1)" >&2
            "$bin" --root "$root" delete --force "$id-trial" >/dev/null 2>&1 || true
            continue
        fi
        names+=("$rt")
        # `run` in the foreground deletes the container when it exits; the (untimed) prepare
        # step force-deletes any leftover so every timed run starts from the same state.
        args+=(--command-name "$rt"
            --prepare "sh -c '$bin --root $root delete --force $id >/dev/null 2>&1 || true'"
            "$bin --root $root run --bundle $BUNDLE $id")
    done
    [ "${#names[@]}" -gt 0 ] || { echo "no runtime to measure" >&2; exit 1; }
    echo
    echo "=== variant: $VARIANT ==="

    hyperfine --shell=none --warmup "${WARMUP:-10}" --runs "${RUNS:-100}" \
        --export-json "bench/results/runtime-startup-$VARIANT.json" \
        --export-markdown "bench/results/runtime-startup-$VARIANT.md" \
        "${args[@]}"

    report "bench/results/runtime-startup-$VARIANT.json"
done
