#!/usr/bin/env bash
# The VM stage of scripts/test.sh: boots each guest kind of scripts/vm/vm.sh once and runs a
# batch of tests in it (scripts/vm/batches/KIND.tests, plus the guest scripts named in
# scripts/vm/batches/KIND.scripts), printing every result and the time each guest took.
#
#   scripts/vm/test.sh [v2|systemd ...]      default: every kind
#   HAKO_VM_ONLY=vm_engine scripts/vm/test.sh   only the batch lines (and scripts) that have it
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
# HAKO_VM_BINARIES=FILE ("ID PATH" lines): a developer's list instead (no workspace build).
if [ -n "${HAKO_VM_BINARIES:-}" ]; then
    cp "$HAKO_VM_BINARIES" "$binaries"
else
    cargo nextest list --list-type binaries-only --message-format json --workspace 2>/dev/null \
        | jq -r '."rust-binaries"[] | "\(."binary-id") \(."binary-path")"' > "$binaries" \
        || cannot_run "cannot list the test executables (cargo nextest list failed)"
fi

runtime=$TARGET/release/hako-runtime
[ -x "$runtime" ] || runtime=$TARGET/debug/hako-runtime
init=$TARGET/release/hako-init
[ -x "$init" ] || init=$TARGET/debug/hako-init

stage_rc=0
summary=()
for kind in "${kinds[@]}"; do
    job=$(mktemp -d /tmp/hako-vm-"$kind".XXXXXX)
    # Resolve the batch's labels to executables: KIND.tests for the boot, KIND.reboot.tests
    # for a second boot after a real reboot (`systemctl reboot` at the end of the first).
    for b in tests reboot.tests; do
        : > "$job/$b.list"
        [ -e "scripts/vm/batches/$kind.$b" ] || continue
        while read -r label args; do
            case "$label" in ''|'#'*) continue ;; esac
            # HAKO_VM_ONLY=PATTERN: only the labels matching it (a developer's shortcut).
            [ -z "${HAKO_VM_ONLY:-}" ] || [[ "$label $args" == *$HAKO_VM_ONLY* ]] || continue
            path=$(awk -v id="$label" '$1 == id {print $2}' "$binaries")
            [ -n "$path" ] || { echo "vm stage: no test executable $label" >&2; stage_rc=1; continue; }
            echo "$label $path $args" >> "$job/$b.list"
        done < "scripts/vm/batches/$kind.$b"
    done
    # What the guest keeps across its reboot (stage 2: hako's store, systemd's units).
    if [ -s "$job/reboot.tests.list" ]; then
        truncate -s 2G "$job/disk.img"
        mkfs.ext4 -q -F -N 65536 -E lazy_itable_init=0,lazy_journal_init=0 "$job/disk.img" \
            || cannot_run "mkfs.ext4 failed (e2fsprogs)"
    fi
    scripts=$(grep -v '^#' "scripts/vm/batches/$kind.scripts" 2>/dev/null \
        | grep -F -- "${HAKO_VM_ONLY:-}" | tr '\n' ' ')
    cat > "$job/job.sh" <<JOB
export CI='${CI:-}' HAKO_VM_KIND='$kind' RUST_BACKTRACE=0 HAKO_RUNTIME='$runtime' HAKO_INIT='$init'
export HAKO_FIXTURES='${HAKO_FIXTURES:-$REPO/.fixtures}' HAKO_REPO='$REPO' HOME=/root
cd '$REPO'
if [ -e /job/rebooted ]; then
    # The second boot: the first one's status, and the tests that need the reboot.
    rc=\$(cat /job/rebooted)
    sh scripts/vm/guest/run-tests.sh /job/reboot.tests.list || rc=1
    exit \$rc
fi
rc=0
sh scripts/vm/guest/run-tests.sh /job/tests.list || rc=1
for s in $scripts; do
    echo "@@ script \$s"
    sh "scripts/vm/guest/\$s" || { echo "@@ script \$s FAILED"; rc=1; }
done
# hako-vm-finish reboots instead of powering off when this is there.
[ -s /job/reboot.tests.list ] && : > /job/reboot
exit \$rc
JOB
    step "VM stage: $kind guest"
    t0=$(date +%s)
    bash scripts/vm/vm.sh boot "$kind" "$job"
    rc=$?
    if [ "$rc" = 3 ]; then
        # The guest's kernel locked up (vm.sh: every CPU stuck, a QEMU TCG guest's fault,
        # not a test's): its console is kept, and the whole guest runs once more, from a
        # fresh disk. The tests must pass in that second boot.
        mv "$job/console.log" "$job/console.lockup.log"
        rm -rf "$job/logs" "$job/status"
        if [ -e "$job/disk.img" ]; then
            rm -f "$job/disk.img"
            truncate -s 2G "$job/disk.img"
            mkfs.ext4 -q -F -N 65536 -E lazy_itable_init=0,lazy_journal_init=0 "$job/disk.img"
        fi
        echo "vm stage: the $kind guest's kernel locked up (console: $job/console.lockup.log); booting it once more"
        bash scripts/vm/vm.sh boot "$kind" "$job"
        rc=$?
    fi
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
    [ "$rc" = 0 ] && [ ! -e "$job/console.lockup.log" ] && rm -rf "$job"
done
echo
for s in "${summary[@]}"; do echo "vm stage: $s"; done
exit $stage_rc
