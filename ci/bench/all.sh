#!/usr/bin/env bash
# Every benchmark, then one side-by-side table (not a test, not in CI).
#
#   bash ci/bench/all.sh
#   BENCH_ALL_WALL=0 bash ci/bench/all.sh     # only the instruction table (~1.5 min)
#
# 1. The wall-clock benchmarks (ci/bench/{auth_request,key_auth,ntlm,http_acl}.sh),
#    short by default here (BENCH_DURATION=3 BENCH_ROUNDS=1 unless set), their
#    full reports saved under target/bench-all/ and their ratio lines echoed.
#    On a shared machine these wobble by ±10%: they are context, not the verdict.
# 2. The deterministic table: callgrind instructions per request of each
#    mechanism, its baseline and its peer (ci/perf-gate.sh --table: release
#    builds, one keep-alive connection, the C auth_request module in the C
#    reference nginx, map + if for key_auth), with issue 15's targets and
#    whether each is met. Exits non-zero only if a benchmark could not run.
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "$0")/../lib.sh"

out=$ROOT/target/bench-all
mkdir -p "$out"
export BENCH_DURATION=${BENCH_DURATION:-3} BENCH_ROUNDS=${BENCH_ROUNDS:-1}
if [[ ${BENCH_ALL_WALL:-1} != 0 ]]; then
    for b in auth_request key_auth ntlm http_acl; do
        log "all: ci/bench/$b.sh (report in $out/$b.txt)"
        # The instruction figures come from step 2; the per-script callgrind runs are skipped.
        BENCH_CALLGRIND=0 bash "$ROOT/ci/bench/$b.sh" >"$out/$b.txt" 2>"$out/$b.log" ||
            die "ci/bench/$b.sh failed (see $out/$b.log)"
        echo "== $b (wall clock, ${BENCH_DURATION}s x $BENCH_ROUNDS round(s))"
        grep -E '^[A-Za-z+/-]+: |MET|within noise|target' "$out/$b.txt" || true
    done
    echo
fi
bash "$ROOT/ci/perf-gate.sh" --table 2>"$out/table.log" | tee "$out/table.txt" | sed -n '/^side by side/,$p' ||
    log "all: the perf gate's own verdict failed (see $out/table.txt)"
