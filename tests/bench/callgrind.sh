#!/usr/bin/env bash
# tests/bench/callgrind.sh - svcdns's instructions per query, counted by valgrind's callgrind:
# a figure that does not move with machine noise, for comparing a change before and after.
#
#   sh tests/bench/callgrind.sh [--svcdns PATH] [--n N]
#     --svcdns PATH   count this binary instead of building build/svcdns from the tree
#     --n N           queries per measured window (default 2000)
#
# svcdns runs under callgrind with one worker on the 10k-Service dataset, forwarding to an NSD
# upstream. For each kind of query (hits, search-path misses, forwarded names answered from
# the cache after a warm-up), qclient.py sends 2N queries to warm up, then the counters are
# zeroed, N queries sent and the instructions read (Ir(N)), zeroed again, 2N sent and read
# (Ir(2N)). Instructions per query = (Ir(2N) - Ir(N)) / N: what a window costs besides its
# queries cancels out. Queries go one at a time, each once svcdns sleeps again, so every
# query costs one event-loop wakeup, the same on every run.
set -eu
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=/usr/bin/python3
W=${BENCH_WORK:-${TMPDIR:-/tmp}/svcdns-bench}
SVCDNS_BIN=""
N=2000
while [ $# -gt 0 ]; do
    case $1 in
    --svcdns) SVCDNS_BIN=$2 && shift ;;
    --n) N=$2 && shift ;;
    -h | --help) sed -n '2,/^[^#]/{/^#/p}' "$0" && exit 0 ;;
    *) echo "callgrind.sh: unknown option $1 (see --help)" >&2 && exit 2 ;;
    esac
    shift
done

sh "$HERE/deps.sh"
# shellcheck source=svcdns-bin.sh source-path=SCRIPTDIR
source "$HERE/svcdns-bin.sh"

DATA=$W/d10k
if ! [ "$DATA/done" -nt "$HERE/gen-dataset.py" ]; then
    rm -rf "$DATA"
    $PY "$HERE/gen-dataset.py" --out "$DATA" >/dev/null && touch "$DATA/done"
fi
RUN=$W/callgrind-$(date +%Y%m%d-%H%M%S)
mkdir -p "$RUN/upstream" "$RUN/svcdns"
# shellcheck source=servers.sh source-path=SCRIPTDIR
source "$HERE/servers.sh"

cleanup() {
    stop_server svcdns
    stop_server upstream
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_upstream
# The run.sh command line, plus --reload-interval 0: the periodic look at the manifests'
# stat() would land in some windows and not in others.
_launch svcdns "$SERVER_CPU" valgrind --tool=callgrind --compress-strings=no --callgrind-out-file="$RUN/callgrind.out.%p" \
    "$SVCDNS_BIN" --manifests "$DATA/manifests" --cluster-domain cluster.local --ttl 30 \
    --listen "127.0.0.1:${PORT[svcdns]}" --upstream "127.0.0.1:${PORT[upstream]}" --workers 1 \
    --reload-interval 0
PID=$(cat "$RUN/svcdns/pid")   # valgrind runs svcdns in its own process: the same PID
$PY "$HERE/dnsprobe.py" "${PORT[svcdns]}" svc9999.ns99.svc.cluster.local --wait 300 --interval 100 >/dev/null || {
    echo "callgrind.sh: svcdns under callgrind did not answer; see $RUN/svcdns/console.log" >&2
    exit 1
}

ir() {  # instructions counted since the last zeroing, summed over svcdns's threads
    callgrind_control -e Ir "$PID" 2>/dev/null | awk '/^ +Th /{gsub(",", "", $3); s += $3} END{print s}'
}
send() {  # send KIND COUNT
    $PY "$HERE/qclient.py" "${PORT[svcdns]}" "$DATA/queries/$1.txt" "$2" --idle-pid "$PID"
}

echo "measured: $MEASURED, 10k Services, 1 worker, N = $N"
echo
echo "| queries | Ir(N) | Ir(2N) | instructions per query | answers (2N) |"
echo "|---|---:|---:|---:|---|"
for kind in hits misses forward; do
    send "$kind" $((2 * N)) >/dev/null   # warm-up: fills the cache for forward
    callgrind_control -z "$PID" >/dev/null 2>&1
    send "$kind" "$N" >/dev/null
    a=$(ir)
    callgrind_control -z "$PID" >/dev/null 2>&1
    rc=$(send "$kind" $((2 * N)))
    b=$(ir)
    callgrind_control --dump="$kind x $((2 * N))" "$PID" >/dev/null 2>&1   # for callgrind_annotate
    printf '| %s | %s | %s | %s | %s |\n' "$kind" "$a" "$b" $(((b - a) / N)) "$rc"
done
echo
echo "Profiles of each 2N window: callgrind_annotate $RUN/callgrind.out.$PID.<1|2|3>"
