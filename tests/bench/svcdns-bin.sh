# shellcheck shell=bash disable=SC2034 # MEASURED is for the scripts that source this
# tests/bench/svcdns-bin.sh - sourced by the benchmark scripts (bash, with HERE and ROOT set):
# SVCDNS_BIN, the binary given with --svcdns or else build/svcdns built from the tree now, as
# an absolute path; and MEASURED, what it is, for the results.
if [ -z "$SVCDNS_BIN" ]; then
    (cd "$ROOT" && cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null &&
        cmake --build build --target svcdns >/dev/null)
    SVCDNS_BIN=$ROOT/build/svcdns
    MEASURED="svcdns built from $(sh "$HERE/version.sh")"
else
    MEASURED="$SVCDNS_BIN ($("$SVCDNS_BIN" --version 2>&1 | head -1))"
fi
SVCDNS_BIN=$(readlink -f "$SVCDNS_BIN")
