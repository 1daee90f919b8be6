#!/usr/bin/env bash
# Builds the fuzz targets and runs them in the background at nice 19 (spare CPU only), each
# on a working corpus seeded from fuzz/{seeds,corpus,regressions}/NAME, so the checked-in
# corpus only changes when `merge` minimizes into it.
#
#   fuzz/run.sh start [SECONDS] [NAME...]   build, then fuzz each NAME (default: all) for
#                                          SECONDS (default: until stopped)
#   fuzz/run.sh status                     last progress line of each target, and the CPU
#                                          time a running one has used so far
#   fuzz/run.sh stop                       stop the fuzzers this script started
#   fuzz/run.sh merge [NAME...]            minimize corpus + working corpus into fuzz/corpus,
#                                          leaving out what the seeds already cover
#
# Logs, working corpora and pids live in fuzz/target/work/; crashes in fuzz/artifacts/NAME/.
# SANITIZER=address uses ASan (needs RUSTC_BOOTSTRAP=1 on a stable toolchain, set here).
# NO_BUILD=1 runs the binaries already built (while the sources are being edited).
# IDLE=1 runs the fuzzers under SCHED_IDLE (`chrt --idle 0`): CPU no other task wants, so a
# soak or a build at nice 19 beside them is not slowed down.
set -euo pipefail
cd "$(dirname "$0")"

ALL=(tar_unpack runtime_config seccomp_profile image_spec image_reference go_template dockerfile api_request)
JSON=" runtime_config seccomp_profile image_spec api_request "
SANITIZER="${SANITIZER:-none}"
WORK=target/work
# The targets that write files (tar_unpack's layers, runtime_config's config.json) write
# each input into a scratch dir under $TMPDIR. On ext4 rewriting a truncated file starts
# its writeback at close (auto_da_alloc), so on disk runtime_config mostly waited on block
# I/O (4 % CPU beside the others' 23 %, ~300 inputs/s); on tmpfs it runs ~7,000/s.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
    export TMPDIR=/dev/shm
fi
BIN=target/x86_64-unknown-linux-gnu/release

build() {
    local env=()
    [ "$SANITIZER" = none ] || env=(RUSTC_BOOTSTRAP=1)
    env "${env[@]}" nice -n 19 cargo fuzz build -O -s "$SANITIZER"
}

# The libFuzzer flags of NAME: its dictionary (plus JSON's), limits.
flags() {
    local name=$1 dict="$WORK/$1.dict"
    : >"$dict"
    case "$JSON" in *" $name "*) cat dicts/json.dict >>"$dict" ;; esac
    [ -f "dicts/$name.dict" ] && cat "dicts/$name.dict" >>"$dict"
    local f=(-dict="$dict" -timeout=60 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="artifacts/$name/")
    [ "$name" = tar_unpack ] && f+=(-max_len=32768)
    printf '%s\n' "${f[@]}"
}

dirs() {
    local name=$1
    printf '%s\n' "$WORK/corpus/$name" "seeds/$name"
    local d
    for d in "corpus/$name" "regressions/$name"; do
        [ -d "$d" ] && echo "$d"
    done
    return 0
}

start() {
    local secs=0
    if [ "${1:-}" != "" ] && [ "$1" -eq "$1" ] 2>/dev/null; then
        secs=$1
        shift
    fi
    local names=("$@")
    [ ${#names[@]} -gt 0 ] || names=("${ALL[@]}")
    [ -n "${NO_BUILD:-}" ] || build
    for name in "${names[@]}"; do
        mkdir -p "$WORK/corpus/$name" "artifacts/$name"
        mapfile -t f < <(flags "$name")
        mapfile -t d < <(dirs "$name")
        local sched=(nice -n 19)
        [ -z "${IDLE:-}" ] || sched=(chrt --idle 0)
        "${sched[@]}" "$BIN/$name" "${f[@]}" -max_total_time="$secs" "${d[@]}" \
            >"$WORK/$name.log" 2>&1 &
        echo $! >"$WORK/$name.pid"
        echo "started $name (pid $!, log fuzz/$WORK/$name.log)"
    done
}

status() {
    for name in "${ALL[@]}"; do
        [ -f "$WORK/$name.log" ] || continue
        local state=stopped cpu=""
        if [ -f "$WORK/$name.pid" ] && kill -0 "$(cat "$WORK/$name.pid")" 2>/dev/null; then
            state=running
            # utime + stime (fields 14, 15 of /proc/PID/stat, after the command's parens).
            cpu=$(sed 's/.*) //' "/proc/$(cat "$WORK/$name.pid")/stat" |
                awk -v hz="$(getconf CLK_TCK)" '{ printf "cpu %.0fs", ($12 + $13) / hz }')
        fi
        printf '%-16s %-8s %-10s %s\n' "$name" "$state" "$cpu" \
            "$(grep -E '^#[0-9]+' "$WORK/$name.log" | tail -1)"
    done
}

stop() {
    for name in "${ALL[@]}"; do
        [ -f "$WORK/$name.pid" ] || continue
        kill "$(cat "$WORK/$name.pid")" 2>/dev/null || true
        rm -f "$WORK/$name.pid"
    done
}

merge() {
    local names=("$@")
    [ ${#names[@]} -gt 0 ] || names=("${ALL[@]}")
    for name in "${names[@]}"; do
        local new="$WORK/merged/$name" f d
        rm -rf "$new" && mkdir -p "$new"
        mapfile -t f < <(flags "$name")
        # Seeds first: libFuzzer copies an input only for coverage not seen before.
        mapfile -t d < <(dirs "$name")
        nice -n 19 "$BIN/$name" "${f[@]}" -merge=1 "$new" "seeds/$name" "${d[@]}" \
            >"$WORK/$name.merge.log" 2>&1
        # Merged files are named by their SHA-1: drop the copies of seeds and regressions.
        for d in "seeds/$name" "regressions/$name"; do
            [ -d "$d" ] || continue
            for s in "$d"/*; do rm -f "$new/$(sha1sum <"$s" | cut -d' ' -f1)"; done
        done
        rm -rf "corpus/$name"
        if [ -n "$(ls -A "$new")" ]; then mv "$new" "corpus/$name"; fi
        echo "$name: $(ls "corpus/$name" 2>/dev/null | wc -l) inputs, $(du -sh "corpus/$name" 2>/dev/null | cut -f1)"
    done
}

cmd=${1:-status}
shift || true
case "$cmd" in
start) start "$@" ;;
status) status ;;
stop) stop ;;
merge) merge "$@" ;;
*)
    echo "usage: fuzz/run.sh start [SECONDS] [NAME...] | status | stop | merge [NAME...]" >&2
    exit 2
    ;;
esac
