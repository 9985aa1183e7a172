# shellcheck shell=bash
# Variables set here are used by the scripts that source this file:
# shellcheck disable=SC2034
# Helpers for the benchmarks under ci/bench/ (sourced, never run).
#
# Method, shared by every benchmark: nginx with one worker pinned to one core,
# wrk pinned to the other, loopback only, every run bounded by its duration.
# Wall-clock req/s on these machines drifts by ±10% between runs, so the
# primary metric is the worker's CPU time per request (utime+stime from
# /proc/<pid>/stat, before and after a run, divided by the requests wrk
# completed): what a config costs the worker, independent of how fast wrk and
# the scheduler happened to be. Variants are interleaved over rounds and the
# median taken, so slow drift hits all of them alike.
#
# Even so, CPU time per request moves by ±5% between runs on these VMs (and
# req/s by far more), and no hardware counters are exposed (perf stat says
# "not supported"). So where valgrind is installed the benchmarks add a
# deterministic metric: user-space instructions per request of nginx run as a
# single process under callgrind, from two runs with different request counts
# (the difference cancels start-up and shutdown). It counts no kernel work and
# no cache or branch effects, but it repeats to a fraction of a percent, which
# is what a "≤ 1.00 ± 3%" comparison needs.
#
# Env knobs (all optional):
#   BENCH_DURATION     seconds per measured run            (default 10)
#   BENCH_WARMUP       seconds of unmeasured warm-up/variant (default 2)
#   BENCH_ROUNDS       interleaved rounds                  (default 5)
#   BENCH_CONNECTIONS  wrk connections                     (default 32)
#   BENCH_PORT_BASE    first fixed port, for scripts that pick their own (default 18480)
#   BENCH_CALLGRIND    1: also measure instructions/request (default 1 if valgrind exists)
#   BENCH_CG_REQUESTS  requests in the callgrind difference (default 2000)

# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

BENCH_DURATION=${BENCH_DURATION:-10}
BENCH_WARMUP=${BENCH_WARMUP:-2}
BENCH_ROUNDS=${BENCH_ROUNDS:-5}
BENCH_CONNECTIONS=${BENCH_CONNECTIONS:-32}
BENCH_PORT_BASE=${BENCH_PORT_BASE:-18480}
BENCH_CG_REQUESTS=${BENCH_CG_REQUESTS:-2000}
if [[ -z "${BENCH_CALLGRIND:-}" ]]; then
    BENCH_CALLGRIND=0
    command -v valgrind >/dev/null && BENCH_CALLGRIND=1
fi
CLK_TCK=$(getconf CLK_TCK)

# Core pinning: nginx on the last CPU we may use, wrk on the first. Without
# taskset or with a single CPU, nothing is pinned (and the output says so).
BENCH_NGINX_PIN=()
BENCH_WRK_PIN=()
bench_setup_pinning() {
    local cpus first last
    if command -v taskset >/dev/null; then
        cpus=$(awk '/^Cpus_allowed_list/ {print $2}' /proc/self/status)
        # A list like "0-1" or "0,2-3": take the first and the last CPU number.
        first=$(awk -F'[,-]' '{print $1}' <<<"$cpus")
        last=$(awk -F'[,-]' '{print $NF}' <<<"$cpus")
        if [[ -n "$first" && "$first" != "$last" ]]; then
            BENCH_NGINX_PIN=(taskset -c "$last")
            BENCH_WRK_PIN=(taskset -c "$first")
            log "bench: nginx pinned to CPU $last, wrk to CPU $first"
            return
        fi
    fi
    log "bench: WARNING: not pinning (no taskset or one CPU); numbers are noisier"
}

# bench_build_ours: release module + vendored nginx. Sets OURS_NGINX, OURS_MODULE.
bench_build_ours() {
    log "bench: cargo build --release (module + vendored nginx)"
    cargo build "${cargo_locked[@]}" --release >&2
    OURS_NGINX=$(find_nginx "$(target_dir)" release)
    OURS_MODULE=$(module_path release)
}

# bench_build_cref: reference nginx from the same nginx-src with the C
# auth_request module, in its own target dir (the flags would otherwise
# reconfigure the main build's nginx). Sets CREF_NGINX.
bench_build_cref() {
    local dir=$ROOT/target/bench-cref
    log "bench: C reference nginx (--with-http_auth_request_module) in $dir"
    CARGO_TARGET_DIR=$dir NGX_CONFIGURE_ARGS=--with-http_auth_request_module \
        cargo build "${cargo_locked[@]}" --release -p nginx-sys >&2
    CREF_NGINX=$(find_nginx "$dir" release)
    "$CREF_NGINX" -V 2>&1 | grep -q -- --with-http_auth_request_module ||
        die "$CREF_NGINX lacks --with-http_auth_request_module"
}

# bench_check_idle: warns when something else is using the CPUs (other
# sessions share this machine and may be building or benchmarking): the
# CPU-time and req/s numbers then mean little; instructions/request still do.
bench_check_idle() {
    local a b busy
    a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)
    sleep 1
    b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)
    busy=$(awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ");
        d = y[2] - x[2]; printf "%d\n", (d > 0 ? 100 * (y[1] - x[1]) / d : 0) }')
    if ((busy > 10)); then
        log "bench: WARNING: the machine is ${busy}% busy before the benchmark starts; CPU time"
        log "       and req/s will be disturbed (instructions/request are not). Busiest processes:"
        ps -eo pcpu,pid,args --sort=-pcpu | head -n 4 | cut -c1-150 >&2
    else
        log "bench: machine idle before start (${busy}% busy)"
    fi
}

# bench_init: pinning, idle check, and one temp dir for all prefixes, removed (with every
# nginx stopped) on exit. Call once, in the main shell, before starting nginx.
BENCH_TMP=""
BENCH_MASTERS=()
bench_init() {
    bench_setup_pinning
    bench_check_idle
    # Under /tmp, not the repo: the workers run as `nobody` when started as
    # root and must be able to read the files they serve.
    BENCH_TMP=$(mktemp -d /tmp/authgate-bench.XXXXXX)
    chmod 755 "$BENCH_TMP"
    trap bench_cleanup EXIT
}

bench_cleanup() {
    bench_stop_all
    [[ -n "$BENCH_TMP" ]] && rm -rf "$BENCH_TMP"
}

# bench_stop_all: stops every nginx bench_start_nginx started, and waits.
bench_stop_all() {
    local m
    for m in "${BENCH_MASTERS[@]}"; do
        kill -TERM "$m" 2>/dev/null || true
    done
    for m in "${BENCH_MASTERS[@]}"; do
        for _ in $(seq 50); do kill -0 "$m" 2>/dev/null || break; sleep 0.1; done
    done
    BENCH_MASTERS=()
}

# bench_free_port: a loopback port nothing listens on now, below the
# kernel's ephemeral range (so no outgoing connection is handed it).
bench_free_port() {
    local p
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 12000))
        ss -Htln "sport = :$p" | grep -q . || {
            printf '%s\n' "$p"
            return 0
        }
    done
    die "no free loopback port found"
}

# bench_start_nginx NAME NGINX_BINARY CONF_TEXT
# Starts nginx (daemonized, pinned) with CONF_TEXT as nginx.conf in a fresh
# prefix $BENCH_TMP/NAME/ (html/ and logs/ exist). Every %%PORT%% in
# CONF_TEXT becomes a free loopback port, retried with another if something
# else binds it first (other sessions run benchmarks on the same machine);
# the port is left in BENCH_PORT. A config with fixed ports works too. The
# config must not set pid or daemon, and should log errors to a file, not
# stderr. Sets BENCH_MASTER to the master's pid. On failure shows nginx's
# complaint and returns 1 (the caller decides whether that ends the
# benchmark). Not to be called in $(...): it records the master for
# bench_cleanup.
BENCH_MASTER=""
BENCH_PORT=""
bench_start_nginx() {
    local name=$1 bin=$2 conf=$3 prefix attempt
    [[ -n "$BENCH_TMP" ]] || die "bench_init first"
    prefix=$BENCH_TMP/$name
    BENCH_MASTER="" BENCH_PORT=""
    mkdir -p "$prefix/conf" "$prefix/logs" "$prefix/html"
    local cmd=("$bin" -p "$prefix/" -c "$prefix/conf/nginx.conf" -g "pid $prefix/logs/nginx.pid;")
    for attempt in 1 2 3 4 5; do
        if [[ "$conf" == *%%PORT%%* ]]; then
            BENCH_PORT=$(bench_free_port)
        fi
        printf '%s\n' "${conf//%%PORT%%/$BENCH_PORT}" >"$prefix/conf/nginx.conf"
        # Output to a file, not a pipe: a daemonized nginx could hold a pipe open.
        if "${cmd[@]}" -t >"$prefix/logs/start.out" 2>&1 &&
            "${BENCH_NGINX_PIN[@]}" "${cmd[@]}" >>"$prefix/logs/start.out" 2>&1; then
            break
        fi
        if [[ -n "$BENCH_PORT" && $attempt -lt 5 ]] && grep -q 'Address already in use' "$prefix/logs/start.out"; then
            log "bench: $name: port $BENCH_PORT taken meanwhile, trying another"
            continue
        fi
        sed "s/^/  $name: /" "$prefix/logs/start.out" >&2
        return 1
    done
    # Daemonized: the pid file is written once the master has bound its sockets.
    for _ in $(seq 100); do
        [[ -s "$prefix/logs/nginx.pid" ]] && break
        sleep 0.05
    done
    [[ -s "$prefix/logs/nginx.pid" ]] || {
        log "bench: $name: nginx wrote no pid file"
        return 1
    }
    BENCH_MASTER=$(<"$prefix/logs/nginx.pid")
    BENCH_MASTERS+=("$BENCH_MASTER")
    printf '%s\n' "$bin" >"$prefix/binary"
}

# bench_worker_pid MASTER_PID: the (single) worker's pid; waits for it.
bench_worker_pid() {
    local master=$1 w
    for _ in $(seq 100); do
        w=$(pgrep -P "$master" | head -n1 || true)
        [[ -n "$w" ]] && {
            printf '%s\n' "$w"
            return 0
        }
        sleep 0.05
    done
    die "no worker process under nginx master $master"
}

# bench_cpu_ticks PID: utime+stime of PID, in clock ticks (1/CLK_TCK s).
# Fields are counted after the ")" closing the command name, which may
# itself contain spaces: utime and stime are fields 14 and 15 of the line,
# i.e. the 12th and 13th after the ")".
bench_cpu_ticks() {
    local stat rest
    stat=$(<"/proc/$1/stat") || die "process $1 is gone"
    rest=${stat##*) }
    # shellcheck disable=SC2086  # splitting the fields is the point
    set -- $rest
    printf '%s\n' "$((${12} + ${13}))"
}

# Extra wrk arguments for every run, e.g. BENCH_WRK_ARGS=(-H 'apikey: k').
BENCH_WRK_ARGS=()

# bench_wrk URL SECONDS: runs wrk (pinned), prints "REQUESTS RPS".
# Fails (returns 1, wrk's output on stderr) if wrk reports any socket error
# or non-2xx/3xx response: a benchmark of error pages measures nothing.
bench_wrk() {
    local url=$1 secs=$2 out reqs rps
    out=$("${BENCH_WRK_PIN[@]}" wrk "${BENCH_WRK_ARGS[@]}" -t1 -c"$BENCH_CONNECTIONS" -d"${secs}s" "$url" 2>&1) || {
        log "$out"
        return 1
    }
    if grep -Eq 'Non-2xx or 3xx responses|Socket errors' <<<"$out"; then
        log "bench: wrk saw errors against $url:"
        log "$out"
        return 1
    fi
    reqs=$(awk '/ requests in / {print $1}' <<<"$out")
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    [[ -n "$reqs" && -n "$rps" ]] || {
        log "bench: cannot parse wrk output:"
        log "$out"
        return 1
    }
    printf '%s %s\n' "$reqs" "$rps"
}

# bench_measure URL WORKER_PID SECONDS: one measured run; prints
# "CPU_US_PER_REQ RPS REQUESTS".
bench_measure() {
    local url=$1 worker=$2 secs=$3 t0 t1 res reqs rps
    t0=$(bench_cpu_ticks "$worker")
    res=$(bench_wrk "$url" "$secs") || return 1
    t1=$(bench_cpu_ticks "$worker")
    read -r reqs rps <<<"$res"
    ((reqs > 0)) || {
        log "bench: no requests completed"
        return 1
    }
    awk -v d="$((t1 - t0))" -v hz="$CLK_TCK" -v n="$reqs" -v rps="$rps" \
        'BEGIN { printf "%.3f %s %d\n", d * 1e6 / hz / n, rps, n }'
}

# bench_median NUMBERS...: the median (mean of the middle two for an even count).
bench_median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
        END { if (NR == 0) exit 1;
              if (NR % 2) printf "%.3f\n", v[(NR + 1) / 2];
              else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# bench_ratio A B: A/B to 3 decimals ("n/a" if either is missing).
bench_ratio() {
    if [[ -z "$1" || -z "$2" || "$1" == n/a || "$2" == n/a ]]; then
        echo n/a
    else
        awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", a / b }'
    fi
}

# bench_callgrind_ir NAME URL N: runs the nginx of prefix $BENCH_TMP/NAME
# (prepared by bench_start_nginx, which must since have been stopped: the
# port is reused) as a single process under callgrind, sends N requests on
# one keep-alive connection, stops it; prints the total instructions (Ir).
# The binary is the one bench_start_nginx recorded in the prefix.
bench_callgrind_ir() {
    local name=$1 url=$2 n=$3 prefix bin vpid out codes ir
    prefix=$BENCH_TMP/$name
    bin=$(<"$prefix/binary")
    out=$prefix/logs/callgrind.$n.out
    rm -f "$prefix/logs/cg.pid" "$out"
    # daemon/master off: the one process that valgrind starts serves the
    # requests. Pinned like the wrk runs, for the same cache behaviour.
    "${BENCH_NGINX_PIN[@]}" valgrind -q --tool=callgrind --callgrind-out-file="$out" \
        "$bin" -p "$prefix/" -c "$prefix/conf/nginx.conf" \
        -g "daemon off; master_process off; pid $prefix/logs/cg.pid;" \
        >"$prefix/logs/callgrind.log" 2>&1 &
    vpid=$!
    for _ in $(seq 600); do
        [[ -s "$prefix/logs/cg.pid" ]] && break
        kill -0 "$vpid" 2>/dev/null || break
        sleep 0.1
    done
    if [[ ! -s "$prefix/logs/cg.pid" ]]; then
        kill -KILL "$vpid" 2>/dev/null || true
        wait "$vpid" 2>/dev/null || true
        sed "s/^/  $name: /" "$prefix/logs/callgrind.log" >&2
        log "bench: $name: nginx under callgrind did not start"
        return 1
    fi
    # curl's URL globbing: N requests, one connection, one status per line.
    codes=$(curl -s -o /dev/null -w '%{http_code}\n' "$url?[1-$n]" | sort | uniq -c | awk '{print $2 "x" $1}' | tr '\n' ' ')
    kill -TERM "$vpid" 2>/dev/null || true
    wait "$vpid" 2>/dev/null || true
    if [[ "$codes" != "200x$n " ]]; then
        log "bench: $name: under callgrind, $n requests answered: $codes"
        return 1
    fi
    ir=$(awk '/^(summary|totals):/ { print $2; exit }' "$out" 2>/dev/null)
    [[ -n "$ir" ]] || {
        log "bench: $name: no totals in $out"
        return 1
    }
    printf '%s\n' "$ir"
}

# bench_callgrind_per_req NAME URL: instructions per request, from runs of
# 100 and 100+BENCH_CG_REQUESTS requests.
bench_callgrind_per_req() {
    local name=$1 url=$2 small=100 large a b
    large=$((small + BENCH_CG_REQUESTS))
    a=$(bench_callgrind_ir "$name" "$url" "$small") || return 1
    b=$(bench_callgrind_ir "$name" "$url" "$large") || return 1
    awk -v a="$a" -v b="$b" -v n="$BENCH_CG_REQUESTS" 'BEGIN { printf "%.0f\n", (b - a) / n }'
}

# --- Variants, measurement rounds, the report -------------------------------
#
# Every benchmark compares variants (configs, locations, upstreams) and does
# the same with them: warm up, measure in interleaved rounds, take medians,
# print a table and ratios, exit non-zero if one failed. Those steps are the
# functions below, so that the method is the same in every script and each
# script keeps only what is its own (configs, sanity checks, wording, targets).
#
# A script sets, per variant name V:
#   BENCH_URL[V]     the URL wrk requests
#   BENCH_WORKER[V]  the nginx worker whose CPU time those requests cost
#   BENCH_LABEL[V]   V's name in the log and the table (default: V)
#   BENCH_PREFIX[V]  the bench_start_nginx NAME serving V, for callgrind (default: V)
# and calls bench_fail V WHY when V cannot be measured. A failed variant is
# skipped from then on, is a FAILED row in the table, and makes
# bench_die_if_failed end the run non-zero.
# The results, per V:
#   BENCH_CPU_RUNS[V] BENCH_RPS_RUNS[V]  every round's CPU µs/req and req/s, space-separated
#   BENCH_CPU[V] BENCH_RPS[V]            their medians (set for every variant bench_rounds
#                                        was given: "measured" below means that)
#   BENCH_IR[V]                          instructions per request, when callgrind ran
# and CPU, req/s and instructions are all n/a once V has failed.
declare -A BENCH_URL=() BENCH_WORKER=() BENCH_LABEL=() BENCH_PREFIX=() BENCH_FAILED=()
declare -A BENCH_CPU_RUNS=() BENCH_RPS_RUNS=() BENCH_CPU=() BENCH_RPS=() BENCH_IR=()

# bench_select_variants ARRAY ALL: sets the caller's ARRAY to the variants
# named in $BENCH_VARIANTS (comma-separated, for running a subset) or else to
# ALL (comma-separated, in table order); dies on a name not in ALL.
bench_select_variants() {
    # Locals prefixed: a nameref would resolve to a local of the same name.
    local -n _bench_sel=$1
    local _bench_all=$2 _bench_v
    IFS=, read -r -a _bench_sel <<<"${BENCH_VARIANTS:-$_bench_all}"
    for _bench_v in "${_bench_sel[@]}"; do
        [[ ",$_bench_all," == *",$_bench_v,"* ]] || die "unknown variant '$_bench_v' (${_bench_all//,/, })"
    done
}

# bench_label V: V's name in the log and the table.
bench_label() { printf '%s\n' "${BENCH_LABEL[$1]:-$1}"; }

# bench_fail V WHY: marks V failed, says so on stderr.
bench_fail() {
    BENCH_FAILED[$1]=$2
    BENCH_CPU[$1]=n/a BENCH_RPS[$1]=n/a BENCH_IR[$1]=n/a
    log "bench: VARIANT FAILED: $(bench_label "$1"): $2"
}

# bench_die_if_failed VARIANTS...: exits non-zero naming the first failed one.
bench_die_if_failed() {
    local v
    for v; do
        [[ -z "${BENCH_FAILED[$v]:-}" ]] || die "variant '$(bench_label "$v")' failed: ${BENCH_FAILED[$v]}"
    done
}

# bench_page FILE: the small static page (~200 bytes) the benchmarks serve,
# the same for every variant so that only the access checks differ.
bench_page() {
    local pad
    printf -v pad '%*s' 150 ''
    printf '<!doctype html><title>bench</title><p>%s</p>\n' "${pad// /x}" >"$1"
}

# bench_http_code [CURL_ARGS...] URL: the status of one GET ("000": no answer),
# for the sanity checks; never fails, the caller compares the code.
bench_http_code() { curl -s -o /dev/null -w '%{http_code}' "$@" || true; }

# bench_nginx_version BINARY: "1.28.3", for the report's heading.
bench_nginx_version() { "$1" -v 2>&1 | sed 's/^nginx version: nginx\///'; }

# bench_rounds VARIANTS...: the measurement proper. Warms every variant up
# (BENCH_WARMUP s, unmeasured), then BENCH_ROUNDS rounds each measuring every
# variant once for BENCH_DURATION s (interleaved, so that drift hits all
# alike), then sets the medians. Already failed variants are skipped, a wrk
# failure fails its variant and the others carry on; dies only if no
# variant is left to measure at all.
bench_rounds() {
    local v round res cpu rps reqs runnable=()
    for v; do
        [[ -n "${BENCH_FAILED[$v]:-}" ]] || runnable+=("$v")
    done
    ((${#runnable[@]})) || die "no variant could run"

    log "bench: warm-up ${BENCH_WARMUP}s per variant"
    for v in "${runnable[@]}"; do
        bench_wrk "${BENCH_URL[$v]}" "$BENCH_WARMUP" >/dev/null || bench_fail "$v" "wrk failed during warm-up"
    done

    for round in $(seq "$BENCH_ROUNDS"); do
        for v in "${runnable[@]}"; do
            [[ -z "${BENCH_FAILED[$v]:-}" ]] || continue
            if ! res=$(bench_measure "${BENCH_URL[$v]}" "${BENCH_WORKER[$v]}" "$BENCH_DURATION"); then
                bench_fail "$v" "wrk run failed in round $round"
                continue
            fi
            read -r cpu rps reqs <<<"$res"
            BENCH_CPU_RUNS[$v]+="$cpu "
            BENCH_RPS_RUNS[$v]+="$rps "
            log "bench: round $round/$BENCH_ROUNDS $(bench_label "$v"): $cpu µs CPU/req, $rps req/s ($reqs requests)"
        done
    done

    for v; do
        [[ -z "${BENCH_FAILED[$v]:-}" ]] || continue
        # shellcheck disable=SC2086  # the runs are space-separated on purpose
        {
            BENCH_CPU[$v]=$(bench_median ${BENCH_CPU_RUNS[$v]})
            BENCH_RPS[$v]=$(bench_median ${BENCH_RPS_RUNS[$v]})
        }
    done
}

# bench_callgrind VARIANTS...: when BENCH_CALLGRIND, the deterministic
# companion metric (see the top of this file) of every variant not failed,
# into BENCH_IR. Stops every nginx first: their prefixes and ports are
# reused, one process at a time. A failing run fails its variant.
bench_callgrind() {
    local v ir
    ((BENCH_CALLGRIND)) || return 0
    bench_stop_all
    for v; do
        [[ -z "${BENCH_FAILED[$v]:-}" ]] || continue
        log "bench: callgrind, $(bench_label "$v"): instructions per request ($BENCH_CG_REQUESTS requests)"
        if ir=$(bench_callgrind_per_req "${BENCH_PREFIX[$v]:-$v}" "${BENCH_URL[$v]}"); then
            BENCH_IR[$v]=$ir
        else
            bench_fail "$v" "callgrind run failed"
        fi
    done
}

# bench_value SOURCE V: V's figure from the results (cpu, rps, ir, cpu_runs,
# rps_runs), or else from the script's own associative array named SOURCE
# (global, keyed by variant, e.g. a fixed property shown as a column; its
# name must differ from the locals of bench_table and bench_value, which
# would hide it). Empty if unset.
bench_value() {
    case $1 in
        cpu) printf '%s\n' "${BENCH_CPU[$2]:-}" ;;
        rps) printf '%s\n' "${BENCH_RPS[$2]:-}" ;;
        ir) printf '%s\n' "${BENCH_IR[$2]:-}" ;;
        cpu_runs) printf '%s\n' "${BENCH_CPU_RUNS[$2]:-}" ;;
        rps_runs) printf '%s\n' "${BENCH_RPS_RUNS[$2]:-}" ;;
        *)
            local -n _bench_arr=$1
            printf '%s\n' "${_bench_arr[$2]:-}"
            ;;
    esac
}

# bench_table LABEL_WIDTH COLUMN... -- VARIANTS...: the results table, a
# header line and one row per variant (first column "variant", LABEL_WIDTH
# wide). Each COLUMN is HEADER:WIDTH:SOURCE (HEADER may contain colons),
# SOURCE as for bench_value; rps is shown rounded to whole req/s, an ir
# never measured as "skipped". The last COLUMN may leave WIDTH empty: free
# text after three spaces (e.g. the per-run figures). A failed variant's row
# has n/a in the fixed columns and "FAILED: why" as its free text.
bench_table() {
    local lw=$1 cols=() spec src width header v line cell val
    shift
    while [[ $1 != -- ]]; do
        cols+=("$1")
        shift
    done
    shift
    printf -v line '%-*s' "$lw" variant
    for spec in "${cols[@]}"; do
        header=${spec%:*:*} width=${spec%:*} width=${width##*:}
        if [[ -n "$width" ]]; then printf -v cell ' %*s' "$width" "$header"; else cell="   $header"; fi
        line+=$cell
    done
    printf '%s\n' "$line"
    for v; do
        printf -v line '%-*s' "$lw" "$(bench_label "$v")"
        for spec in "${cols[@]}"; do
            src=${spec##*:} width=${spec%:*} width=${width##*:}
            val=$(bench_value "$src" "$v")
            if [[ -n "${BENCH_FAILED[$v]:-}" ]]; then
                val=n/a
                [[ -n "$width" ]] || val="FAILED: ${BENCH_FAILED[$v]}"
            elif [[ "$src" == ir && -z "$val" ]]; then
                val=skipped
            fi
            if [[ -z "$width" ]]; then
                cell="   $val"
            elif [[ "$src" == rps && "$val" != n/a ]]; then
                printf -v cell ' %*.0f' "$width" "$val"
            else
                printf -v cell ' %*s' "$width" "$val"
            fi
            line+=$cell
        done
        # A failed row keeps its reason even in a table without free text.
        if [[ -n "${BENCH_FAILED[$v]:-}" && -n "$width" ]]; then
            line+="   FAILED: ${BENCH_FAILED[$v]}"
        fi
        printf '%s\n' "$line"
    done
}

# bench_ratio_line WIDTH NAME A B METRIC...: one line of ratios A/B, e.g.
# "ours/C:        CPU/req  0.987   req/s  1.124", NAME padded to WIDTH, one
# "WORD RATIO" per METRIC (cpu, rps, ir) in the order given; n/a where a
# figure is missing. Prints nothing if A or B was not measured (a subset of
# the variants was selected).
bench_ratio_line() {
    local width=$1 name=$2 a=$3 b=$4 m word line sep=" "
    shift 4
    [[ -n "${BENCH_CPU[$a]:-}" && -n "${BENCH_CPU[$b]:-}" ]] || return 0
    printf -v line '%-*s' "$width" "$name"
    for m; do
        case $m in
            cpu) word=CPU/req ;;
            rps) word=req/s ;;
            ir) word=instr/req ;;
            *) die "bench_ratio_line: unknown metric '$m'" ;;
        esac
        printf -v line '%s%s%s %6s' "$line" "$sep" "$word" "$(bench_ratio "$(bench_value "$m" "$a")" "$(bench_value "$m" "$b")")"
        sep="   "
    done
    printf '%s\n' "$line"
}

# bench_target_evaluable A B NAME_A NAME_B: whether a target comparing
# variants A and B can be judged. If not (one was not selected, or failed),
# prints why, indented under the target's line, and returns 1.
bench_target_evaluable() {
    if [[ -z "${BENCH_CPU[$1]:-}" || -z "${BENCH_CPU[$2]:-}" ]]; then
        echo "  not evaluated: variants $1 and $2 were not both selected"
    elif [[ -n "${BENCH_FAILED[$1]:-}" || -n "${BENCH_FAILED[$2]:-}" ]]; then
        echo "  NOT EVALUATED: $3: ${BENCH_FAILED[$1]:-ok}; $4: ${BENCH_FAILED[$2]:-ok}"
    else
        return 0
    fi
    return 1
}
