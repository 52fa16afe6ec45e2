#!/usr/bin/env bash
# tests/bench/kube.sh - the scaled mode: svcdns following a Kubernetes API server with many
# Services (the fake of tests/e2e/fake_apiserver.py), see README.md, "The API path".
#
#   sh tests/bench/kube.sh [options]
#     --services N     Services, each with an EndpointSlice of 3 endpoints (default 100000)
#     --rate R         EndpointSlice changes per second during the stream (default 100)
#     --duration S     seconds of the stream (default 30)
#     --svcdns PATH    measure this binary instead of building build/svcdns from the tree
#
# svcdns runs pinned to CPU 0 with one worker; the fake and the probes on CPU 1. Results go
# to $BENCH_WORK/kube-results-<time>/ (figures.tsv, table.md, svcdns's logs, the manifests of
# the comparison); kube-results-latest points at the newest. svcdns is stopped by its PID.
set -eu
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
W=${BENCH_WORK:-${TMPDIR:-/tmp}/svcdns-bench}
SVCDNS_BIN=""
ARGS=()
while [ $# -gt 0 ]; do
    case $1 in
    --services | --rate | --duration) ARGS+=("$1" "$2") && shift ;;
    --svcdns) SVCDNS_BIN=$2 && shift ;;
    -h | --help) sed -n '2,/^[^#]/{/^#/p}' "$0" && exit 0 ;;
    *) echo "kube.sh: unknown option $1 (see --help)" >&2 && exit 2 ;;
    esac
    shift
done

sh "$ROOT/deploy/install-deps.sh"
# shellcheck source=svcdns-bin.sh source-path=SCRIPTDIR
source "$HERE/svcdns-bin.sh"
for tool in taskset openssl; do
    command -v "$tool" >/dev/null || { echo "kube.sh: $tool is missing" >&2 && exit 1; }
done
/usr/bin/python3 -c "import dns.message" 2>/dev/null ||
    { echo "kube.sh: python3-dnspython is missing (sh tests/bench/deps.sh)" >&2 && exit 1; }

OUT=$W/kube-results-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
echo "kube.sh: measuring $MEASURED; results in $OUT" >&2
/usr/bin/python3 "$HERE/kube.py" --svcdns "$SVCDNS_BIN" --out "$OUT" \
    "${ARGS[@]+"${ARGS[@]}"}" | tee "$OUT/table.md"
echo "$MEASURED" >>"$OUT/table.md"
ln -sfn "$OUT" "$W/kube-results-latest"
