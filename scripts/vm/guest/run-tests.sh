#!/bin/sh
# Runs test executables inside the guest: one line of LIST per executable,
#   LABEL PATH [libtest arguments: filters, --skip NAME, --exact ...]
# Every test result becomes "@@ test LABEL::NAME ok|FAILED|ignored"; the full output of each
# executable goes to /job/logs/LABEL.log. Exit status: 0 iff every executable passed.
list=${1:?list}
mkdir -p /job/logs
up() { cut -d' ' -f1 /proc/uptime; }
rc=0
while read -r label path args; do
    case "$label" in ''|'#'*) continue ;; esac
    log=/job/logs/$(echo "$label" | tr ':/' '__')
    # A label on several lines (or in both boots of a rebooting job): a log each.
    n=1; sfx=; while [ -e "$log$sfx.log" ]; do n=$((n + 1)); sfx=.$n; done; log=$log$sfx.log
    t0=$(up)
    # shellcheck disable=SC2086 # args are libtest's, split on purpose
    "$path" --test-threads="${HAKO_VM_TEST_THREADS:-2}" $args > "$log" 2>&1
    st=$?
    sed -n 's/^test \(.*\) \.\.\. \(ok\|FAILED\|ignored\)$/@@ test '"$label"'::\1 \2/p' "$log"
    n=$(grep -c '^test .* \.\.\. ' "$log")
    echo "@@ ran $label: $n tests, status $st, $(awk "BEGIN{printf \"%.1f\", $(up)-$t0}")s"
    [ "$st" = 0 ] && [ "$n" -gt 0 ] || rc=1
done < "$list"
exit $rc
