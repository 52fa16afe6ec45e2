#!/usr/bin/env bash
# tests/bench/run.sh - svcdns side by side with NSD, Knot DNS, Unbound, dnsmasq and Knot
# Resolver on this machine, in one run; prints one markdown table (see README.md).
#
#   sh tests/bench/run.sh [options]
#     --quick            a 5-6 minute smoke run: 5 s runs, 1 repetition, 3 s latency runs
#     --svcdns PATH      measure this binary instead of building build/svcdns from the tree
#     --only LIST        comma-separated subset of svcdns,nsd,knot,unbound,dnsmasq,kresd
#     --duration S       seconds per throughput run (default 10)
#     --reps N           repetitions of every run (default 2; medians are reported)
#     --lat-qps Q        fixed query rate of the latency runs (default 20000)
#     --lat-duration S   seconds per latency run (default 5)
#
# Each server runs pinned to CPU 0 with one worker/thread; dnsperf and the upstream NSD run
# on CPU 1. Everything listens on 127.0.0.1 ports from $BENCH_PORT_BASE (default 10530).
# Work files and results go to $BENCH_WORK (default $TMPDIR/svcdns-bench); results-latest
# points at the newest results. Every process started here is stopped by its PID on exit,
# also on failure or Ctrl-C.
set -eu
# `sh run.sh` works too: come back as bash (arrays, $'...').
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=/usr/bin/python3
W=${BENCH_WORK:-${TMPDIR:-/tmp}/svcdns-bench}
SERVER_CPU=0
CLIENT_CPU=1
UPSTREAM_CPU=1
DURATION=10
REPS=2
LAT_QPS=20000
LAT_DURATION=5
SVCDNS_BIN=""
ONLY=""
while [ $# -gt 0 ]; do
    case $1 in
    --quick) DURATION=5 REPS=1 LAT_DURATION=3 ;;
    --svcdns) SVCDNS_BIN=$2 && shift ;;
    --only) ONLY=$2 && shift ;;
    --duration) DURATION=$2 && shift ;;
    --reps) REPS=$2 && shift ;;
    --lat-qps) LAT_QPS=$2 && shift ;;
    --lat-duration) LAT_DURATION=$2 && shift ;;
    -h | --help) sed -n '2,/^[^#]/{/^#/p}' "$0" && exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2 && exit 2 ;;
    esac
    shift
done

# ------------------------------------------------------------------ tools, svcdns, data
sh "$HERE/deps.sh"
# shellcheck source=svcdns-bin.sh source-path=SCRIPTDIR
source "$HERE/svcdns-bin.sh"

# shellcheck source=servers.sh source-path=SCRIPTDIR
source "$HERE/servers.sh"
SERVERS=$ALL_SERVERS
if [ -n "$ONLY" ]; then
    SERVERS=""
    for s in ${ONLY//,/ }; do
        case " $ALL_SERVERS " in
        *" $s "*) SERVERS="$SERVERS $s" ;;
        *) echo "run.sh: --only: unknown server $s (one of: $ALL_SERVERS)" >&2 && exit 2 ;;
        esac
    done
fi

mkdir -p "$W/bin"
REFLECTOR_BIN=$W/bin/reflector
[ "$REFLECTOR_BIN" -nt "$HERE/reflector.c" ] ||
    cc -O2 -Wall -o "$REFLECTOR_BIN" "$HERE/reflector.c"
gen() {  # gen NAME ARGS... : a dataset, made again when the generator changed
    [ "$W/$1/done" -nt "$HERE/gen-dataset.py" ] && return 0
    rm -rf "${W:?}/$1"
    local d=$1
    shift
    $PY "$HERE/gen-dataset.py" --out "$W/$d" "$@" >/dev/null && touch "$W/$d/done"
}
gen d10k
gen d100k --services 100000
gen d100k-reload --services 100000 --extra reloadprobe.ns0   # the full reload's new data

TS=$(date +%Y%m%d-%H%M%S)
OUT=$W/results-$TS   # figures.tsv, log.txt, dnsperf outputs, table.md
RUN=$W/run-$TS       # configs, pids, consoles of this run's servers
mkdir -p "$OUT" "$RUN"
ln -sfn "results-$TS" "$W/results-latest"
LOG=$OUT/log.txt
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$LOG" >&2; }
fig() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$OUT/figures.tsv"; }   # SERVER FIGURE VALUE

PROBES=""   # background dnsprobe PIDs, stopped too on exit
cleanup() {
    local s p
    for p in $PROBES; do kill "$p" 2>/dev/null || true; done
    for s in reflector $ALL_SERVERS upstream; do stop_server "$s"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

{
    echo "measured: $MEASURED"
    echo "date: $(date -Is); $(nproc) CPUs:$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2); kernel $(uname -r)"
    echo "dnsperf $(dpkg-query -W -f='${Version}' dnsperf), NSD $(dpkg-query -W -f='${Version}' nsd)," \
        "Knot DNS $(dpkg-query -W -f='${Version}' knot), Unbound $(dpkg-query -W -f='${Version}' unbound)," \
        "dnsmasq $(dpkg-query -W -f='${Version}' dnsmasq-base), Knot Resolver $(dpkg-query -W -f='${Version}' knot-resolver)"
    echo "throughput: dnsperf -c 4 -q 100, ${DURATION} s x ${REPS}; latency: ${LAT_QPS} qps for ${LAT_DURATION} s x ${REPS}"
} >"$OUT/env.txt"
log "results in $OUT"

snap_cpu() {  # "busy0 total0 busy1 total1" jiffies of CPU 0 and 1
    awk '/^cpu[01] /{b=$2+$3+$4+$7+$8+$9; printf "%d %d ", b, b+$5+$6}' /proc/stat
}
wait_quiet() {  # wait (10 s at most) for both CPUs under 15% busy over 1 s; prints "c0%/c1%"
    local a b pct
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        a=$(snap_cpu)
        sleep 1
        b=$(snap_cpu)
        pct=$(awk -v a="$a" -v b="$b" 'BEGIN{split(a,x," "); split(b,y," ");
            printf "%.0f/%.0f", 100*(y[1]-x[1])/(y[2]-x[2]+1e-9), 100*(y[3]-x[3])/(y[4]-x[4]+1e-9)}')
        [ "$(awk -v p="$pct" 'BEGIN{split(p,z,"/"); print (z[1]<15 && z[2]<15)}')" = 1 ] && break
    done
    echo "$pct"
}

probe() {  # probe NAME QNAME WAIT SINCE : poll the server until QNAME answers; prints seconds
    local out
    out=$($PY "$HERE/dnsprobe.py" "${PORT[$1]}" "$2" --wait "$3" --interval 5 --since "$4") || {
        log "$1: no answer for $2 within $3 s ($out)"
        echo FAIL
        return 0
    }
    echo "$out" | awk '{print $3}'
}

# ------------------------------------------------------------------ phase A: 10k, under load
tests_for() {  # the tests that apply to a server
    case $1 in
    reflector) echo hits ;;
    *) case " $FORWARDERS " in *" $1 "*) echo hits misses forward ;; *) echo hits misses ;; esac ;;
    esac
}

run_perf() {  # run_perf SERVER TEST REP : saturating dnsperf run; qps and server CPU per query
    local s=$1 t=$2 rep=$3 bg c0 c1 out qps comp lost hz
    bg=$(wait_quiet)
    c0=$(cpu_ticks "$s")
    out=$(taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "${PORT[$s]}" -d "$DATA/queries/$t.txt" \
        -l "$DURATION" -c 4 -q 100 -t 2 2>&1) || true
    c1=$(cpu_ticks "$s")
    echo "$out" >"$OUT/dnsperf-$s-$t-$rep.txt"
    qps=$(echo "$out" | awk '/Queries per second/{print $4}')
    comp=$(echo "$out" | awk '/Queries completed/{print $3}')
    lost=$(echo "$out" | awk '/Queries lost/{print $3}')
    hz=$(getconf CLK_TCK)
    # CPU per answered query: ticks of the server's process tree over the run
    read -r u s2 < <(awk -v a="$c0" -v b="$c1" -v n="${comp:-0}" -v hz="$hz" 'BEGIN{
        split(a,x," "); split(b,y," "); if (n == 0) { print "NA NA"; exit }
        printf "%.3f %.3f\n", (y[1]-x[1])/hz*1e6/n, (y[2]-x[2])/hz*1e6/n}')
    fig "$s" "${t}_qps" "${qps:-NA}"
    fig "$s" "${t}_us_usr" "$u"
    fig "$s" "${t}_us_sys" "$s2"
    log "$s $t rep $rep: ${qps:-?} qps, lost ${lost:-?}, server CPU µs/query user $u + kernel $s2 (CPUs busy before: $bg%)"
}

run_lat() {  # run_lat SERVER TEST REP : fixed-rate dnsperf run; p50 and p99 of the latencies
    local s=$1 t=$2 rep=$3 bg raw p
    bg=$(wait_quiet)
    raw=$OUT/latency-$s-$t-$rep.txt
    taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "${PORT[$s]}" -d "$DATA/queries/$t.txt" \
        -l "$LAT_DURATION" -Q "$LAT_QPS" -c 4 -q 500 -t 2 -v >"$raw" 2>&1 || true
    # -v prints one line per answer, its latency in seconds last
    p=$(awk '/^> /{print $NF * 1000}' "$raw" | sort -n | awk '{v[NR]=$1} END{
        if (NR == 0) { print "NA NA"; exit }
        i50 = int(NR * 0.50); i99 = int(NR * 0.99); if (i50 < 1) i50 = 1; if (i99 < 1) i99 = 1
        printf "%.3f %.3f\n", v[i50], v[i99]}')
    fig "$s" "${t}_p50" "${p% *}"
    fig "$s" "${t}_p99" "${p#* }"
    log "$s $t latency rep $rep at $LAT_QPS qps: p50 ${p% *} ms, p99 ${p#* } ms, $(awk '/Queries lost/{print $3}' "$raw") lost (CPUs busy before: $bg%)"
    gzip -f "$raw"
}

log "phase A: every server on the 10k dataset"
DATA=$W/d10k
UP=""
mkdir -p "$RUN/upstream" && start_upstream
for s in $SERVERS reflector; do start_server "$s"; done
now=$(date +%s.%N)
for s in $SERVERS; do
    st=$(probe "$s" svc9999.ns99.svc.cluster.local 60 "$now")
    if [ "$st" = FAIL ]; then
        log "$s did not start: $(tail -3 "$RUN/$s/console.log")"
        stop_server "$s"
    else
        UP="$UP $s"
    fi
done
sleep 2
for s in $UP; do fig "$s" rss10k "$(status_kib "$s" VmRSS)"; done
# warm the caches: every upstream name once (forwarders), every miss name once (Knot
# Resolver caches the upstream's NXDOMAINs), so the runs measure answers from the cache
for s in $UP; do
    case " $FORWARDERS " in *" $s "*)
        for f in forward-warm misses; do
            taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "${PORT[$s]}" -d "$DATA/queries/$f.txt" \
                -n 1 -c 4 -q 50 >"$OUT/warm-$s-$f.txt" 2>&1 || true
        done ;;
    esac
done
order=""
for s in $UP reflector; do order="$order $s"; done
for rep in $(seq "$REPS"); do
    # every other repetition in reverse order, so that drift hits every server alike
    cur=$order
    [ $((rep % 2)) = 0 ] && cur=$(echo "$order" | tr ' ' '\n' | tac | tr '\n' ' ')
    for t in hits misses forward; do
        for s in $cur; do
            case " $(tests_for "$s") " in *" $t "*) run_perf "$s" "$t" "$rep" ;; esac
        done
    done
    for t in hits misses forward; do
        for s in $cur; do
            case " $(tests_for "$s") " in *" $t "*) run_lat "$s" "$t" "$rep" ;; esac
        done
    done
done
for s in reflector $UP upstream; do stop_server "$s"; done

# ------------------------------------------------------------------ phase B: 100k, one at a time
# The servers read $LIVE; a reload test swaps files inside that same directory (some servers
# chdir into their zone directory, so swapping a symlink would not be seen).
LIVE=$RUN/live
live_install() {  # live_install DATASET : replace every served file (new inode and mtime)
    local f
    mkdir -p "$LIVE/zones" "$LIVE/manifests"
    for f in zones/cluster.local.zone zones/example.test.zone hosts unbound-local-data.conf; do
        cp "$1/$f" "$LIVE/$f.tmp" && mv -f "$LIVE/$f.tmp" "$LIVE/$f"
    done
    for f in "$1"/manifests/*.yaml; do
        cp "$f" "$LIVE/manifests/.${f##*/}.tmp" && mv -f "$LIVE/manifests/.${f##*/}.tmp" "$LIVE/manifests/${f##*/}"
    done
}
change_svcdns() {  # change_svcdns NAME IP : one more Service in ONE of the 100 files, then SIGHUP
    local svc=${1%%.*} rest=${1#*.} f=$LIVE/manifests/ns1.yaml
    local ns=${rest%%.*}
    { cat "$f" && printf -- '---\napiVersion: v1\nkind: Service\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  clusterIP: %s\n' \
        "$svc" "$ns" "$2"; } >"$f.tmp"
    mv -f "$f.tmp" "$f"
    reload_svcdns
}
full_reload() {  # full_reload SERVER : every served file replaced, then SERVER's own reload
    live_install "$W/d100k-reload"
    "reload_$1"
}
timed() {  # timed SERVER QNAME CMD... : seconds from CMD's start to QNAME's first answer
    local s=$1 q=$2 t0 r pid
    shift 2
    t0=$(date +%s.%N)
    "$@" &
    pid=$!
    r=$(probe "$s" "$q" 120 "$t0")
    wait "$pid" || r=FAIL
    echo "$r"
}

log "phase B: startup, reloads and memory with 100k Services, one server at a time"
DATA=$LIVE
live_install "$W/d100k"
start_upstream
[ "$(probe upstream host1.example.test 30 "$(date +%s.%N)")" != FAIL ]
for rep in $(seq "$REPS"); do
    for s in $UP; do
        live_install "$W/d100k"
        wait_quiet >/dev/null
        # the probe is polling before the server starts: startup = start to first answer
        t0=$(date +%s.%N)
        $PY "$HERE/dnsprobe.py" "${PORT[$s]}" svc99999.ns99.svc.cluster.local --wait 300 \
            --interval 5 --since "$t0" >"$RUN/startup.out" &
        PROBES=$!
        start_server "$s"
        wait "$PROBES" || true
        PROBES=""
        st=$(awk '$1 == "NOERROR" {print $3}' "$RUN/startup.out")
        fig "$s" startup100k "${st:-FAIL}"
        sleep 2
        rss=$(status_kib "$s" VmRSS)
        fig "$s" rss100k "$rss"
        # full reload: every file replaced, one more Service (reloadprobe.ns0) in the data,
        # then the server's reload; timed from the start of the copy, since svcdns's file
        # watch starts reading while the files are still being replaced
        reset_hwm "$s"
        rl=$(timed "$s" reloadprobe.ns0.svc.cluster.local full_reload "$s")
        fig "$s" reload100k "$rl"
        # settle: svcdns's file watch may start one more build after the SIGHUP's
        sleep 6
        hwm=$(status_kib "$s" VmHWM)
        rss2=$(status_kib "$s" VmRSS)
        fig "$s" hwm_reload "$hwm"
        fig "$s" rss100k_after "$rss2"
        # one changed file (svcdns) or one changed record through the control channel
        r1=-
        if declare -F "change_$s" >/dev/null; then
            r1=$(timed "$s" "reloadone$rep.ns1.svc.cluster.local" "change_$s" \
                "reloadone$rep.ns1.svc.cluster.local" "10.111.255.$rep")
            fig "$s" reload1_100k "$r1"
        fi
        log "$s 100k rep $rep: startup ${st:-FAIL} s, RSS $((rss / 1024)) MiB, full reload $rl s" \
            "(peak $((hwm / 1024)) MiB, after $((rss2 / 1024)) MiB), one change $r1 s"
        if [ "$s" = svcdns ]; then   # which builds ran, and how long each took
            grep -h 'module=reload' "$RUN/svcdns/console.log" >>"$LOG" || true
        fi
        stop_server "$s"
        if [ "$s" = svcdns ]; then
            # a restart on the same files: each is read back from --manifest-cache, which the
            # run above filled (the reloads too), instead of parsed
            t0=$(date +%s.%N)
            $PY "$HERE/dnsprobe.py" "${PORT[$s]}" svc99999.ns99.svc.cluster.local --wait 300 \
                --interval 5 --since "$t0" >"$RUN/startup.out" &
            PROBES=$!
            start_server "$s"
            wait "$PROBES" || true
            PROBES=""
            st=$(awk '$1 == "NOERROR" {print $3}' "$RUN/startup.out")
            fig "$s" restart100k "${st:-FAIL}"
            log "$s 100k rep $rep: restart with the manifest cache ${st:-FAIL} s"
            stop_server "$s"
        fi
    done
done
stop_server upstream

$PY "$HERE/summarize.py" "$OUT" | tee "$OUT/table.md"
log "done: $OUT"
