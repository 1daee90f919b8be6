#!/usr/bin/env bash
# The VM stage of scripts/test.sh: boots each guest kind of scripts/vm/vm.sh once and runs a
# batch of tests in it (scripts/vm/batches/KIND.tests, plus the guest scripts named in
# scripts/vm/batches/KIND.scripts), printing every result and the time each guest took.
#
#   scripts/vm/test.sh [v2|systemd ...]      default: every kind
#   HAKO_VM_ONLY=vm_engine scripts/vm/test.sh   only the batch lines whose label has it
#
# Needs root (the tests run real containers in the guest) and the test executables already
# built (scripts/test.sh runs this after `cargo nextest run`). Under CI=true a stage that
# cannot run fails; elsewhere it says why and passes.
set -uo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
REPO=$(pwd)
TARGET=$(target_dir)

cannot_run() {
    if [ "${CI:-}" = true ]; then
        echo "vm stage: FAILED: $*" >&2
        exit 1
    fi
    echo "vm stage: SKIP: $*"
    exit 0
}

[ "$(id -u)" = 0 ] || cannot_run "needs root"
bash scripts/vm/vm.sh setup || cannot_run "no guest kernel (scripts/vm/vm.sh setup failed)"

kinds=("$@")
if [ ${#kinds[@]} -eq 0 ]; then
    for k in v2 systemd; do
        ls scripts/vm/batches/"$k".* >/dev/null 2>&1 && kinds+=("$k")
    done
fi

# nextest's binary ids (hako-e2e::verbs) to executable paths, without building anything new.
binaries=$(mktemp)
trap 'rm -f "$binaries"' EXIT
cargo nextest list --list-type binaries-only --message-format json --workspace 2>/dev/null \
    | jq -r '."rust-binaries"[] | "\(."binary-id") \(."binary-path")"' > "$binaries" \
    || cannot_run "cannot list the test executables (cargo nextest list failed)"

runtime=$TARGET/release/hako-runtime
[ -x "$runtime" ] || runtime=$TARGET/debug/hako-runtime
init=$TARGET/release/hako-init
[ -x "$init" ] || init=$TARGET/debug/hako-init

stage_rc=0
summary=()
for kind in "${kinds[@]}"; do
    job=$(mktemp -d /tmp/hako-vm-"$kind".XXXXXX)
    # Resolve the batch's labels to executables.
    : > "$job/tests.list"
    if [ -e "scripts/vm/batches/$kind.tests" ]; then
        while read -r label args; do
            case "$label" in ''|'#'*) continue ;; esac
            # HAKO_VM_ONLY=PATTERN: only the labels matching it (a developer's shortcut).
            [ -z "${HAKO_VM_ONLY:-}" ] || [[ "$label" == *$HAKO_VM_ONLY* ]] || continue
            path=$(awk -v id="$label" '$1 == id {print $2}' "$binaries")
            [ -n "$path" ] || { echo "vm stage: no test executable $label" >&2; stage_rc=1; continue; }
            echo "$label $path $args" >> "$job/tests.list"
        done < "scripts/vm/batches/$kind.tests"
    fi
    scripts=$(grep -v '^#' "scripts/vm/batches/$kind.scripts" 2>/dev/null | tr '\n' ' ')
    cat > "$job/job.sh" <<JOB
export CI='${CI:-}' HAKO_VM_KIND='$kind' RUST_BACKTRACE=0 HAKO_RUNTIME='$runtime' HAKO_INIT='$init'
export HAKO_FIXTURES='${HAKO_FIXTURES:-$REPO/.fixtures}' HAKO_REPO='$REPO' HOME=/root
cd '$REPO'
rc=0
sh scripts/vm/guest/run-tests.sh /job/tests.list || rc=1
for s in $scripts; do
    echo "@@ script \$s"
    sh "scripts/vm/guest/\$s" || { echo "@@ script \$s FAILED"; rc=1; }
done
exit \$rc
JOB
    step "VM stage: $kind guest"
    t0=$(date +%s)
    bash scripts/vm/vm.sh boot "$kind" "$job"
    rc=$?
    secs=$(( $(date +%s) - t0 ))
    if [ "$rc" != 0 ]; then
        stage_rc=1
        # The failing tests' own words (the full logs stay in the job dir).
        for log in "$job"/logs/*.log; do
            [ -e "$log" ] || continue
            grep -q -- '--- FAILED\|^failures:' "$log" || continue
            echo "---- $log"
            sed -n '/^failures:$/,/^test result/p' "$log" | head -200
        done
    fi
    summary+=("$kind: status $rc, ${secs}s, $(grep -c '^@@ test .* ok$' "$job/console.log") tests passed, $(grep -c '^@@ test .* FAILED$' "$job/console.log") failed$([ "$rc" = 0 ] || echo " (logs: $job)")")
    [ "$rc" = 0 ] && rm -rf "$job"
done
echo
for s in "${summary[@]}"; do echo "vm stage: $s"; done
exit $stage_rc
