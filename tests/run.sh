#!/bin/sh
# Runs every test: installs what is missing, checks layout and formatting, then builds twice
# (plain, and ASan+UBSan) and runs the unit and end-to-end tests in both (the end-to-end ones
# include a short soak under dnsperf, tests/e2e/test_soak.py); a ThreadSanitizer build runs
# the unit tests and a multi-worker load with reloads and /metrics scrapes; then clang-tidy
# and cppcheck over the sources, and every fuzz target for FUZZ_SECONDS (default 60) each.
set -eu
cd "$(dirname "$0")/.."
sh deploy/install-deps.sh --tests

# The dependency graph points one way: zones/ -> dns/ <- resolver/. Only the composition root
# in dns/daemon/ includes every module; zones/ and resolver/ never include each other.
if grep -n '#include "\(zones\|resolver\)/' dns/*.c dns/*.h; then
    echo "tests/run.sh: dns/ must not include zones/ or resolver/ headers (only dns/daemon/)" >&2
    exit 1
fi
if grep -n '#include "zones/' resolver/*.c resolver/*.h; then
    echo "tests/run.sh: resolver/ reaches zone data only through dns/names.h" >&2
    exit 1
fi
if grep -n '#include "\(resolver\|dns/daemon\)/' zones/*.c zones/*.h; then
    echo "tests/run.sh: zones/ must not include resolver/ or dns/daemon/ headers" >&2
    exit 1
fi
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find dns zones resolver tests -name '*.[ch]')
clang-format --dry-run --Werror $files

status=0
for variant in plain asan; do
    dir=build-test-$variant
    flags="-DCMAKE_BUILD_TYPE=RelWithDebInfo"
    [ "$variant" = asan ] && flags="-DCMAKE_BUILD_TYPE=Debug -DSANITIZE=ON"
    echo "== $variant build" >&2
    cmake -S . -B "$dir" -G Ninja $flags >/dev/null
    cmake --build "$dir"
    echo "== $variant tests" >&2
    (cd "$dir" && ctest --output-on-failure --timeout 1800) || status=1
done
# ThreadSanitizer: the unit tests, and several workers under UDP and TCP load while manifests
# change every 100-200 ms and /metrics is scraped (tests/e2e/test_concurrency.py). A race
# report ends svcdns at once with exit status 66, which fails the test; a unit test that
# races fails likewise. libuv and the other Debian libraries are not instrumented: TSan sees
# their locks (it intercepts pthread) but not their atomics; no report has needed a
# suppression so far.
echo "== tsan build" >&2
cmake -S . -B build-test-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSANITIZE=thread \
    >/dev/null
cmake --build build-test-tsan
echo "== tsan tests" >&2
tsan="halt_on_error=1 exitcode=66 second_deadlock_stack=1"
(cd build-test-tsan && TSAN_OPTIONS=$tsan ctest --output-on-failure -R '^unit_') || status=1
TSAN_OPTIONS=$tsan SVCDNS_BIN="$PWD/build-test-tsan/svcdns" SVCDNS_SOURCE="$PWD" \
    /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/e2e/test_concurrency.py || status=1
# Static analysis of the sources, with the plain build's compile commands: clang-tidy with the
# committed .clang-tidy (every finding is an error) and cppcheck; each catches what the other
# misses.
echo "== static analysis" >&2
tidy_log=$(mktemp)
# One file per run: clang-tidy 14 reports va_list false positives across several.
ls dns/*.c dns/daemon/*.c zones/*.c resolver/*.c |
    xargs -P 2 -n 1 clang-tidy -p build-test-plain --quiet >"$tidy_log" 2>&1 || {
    grep -E "(error|warning):" "$tidy_log" >&2
    echo "clang-tidy: findings above (see .clang-tidy)" >&2
    status=1
}
rm -f "$tidy_log"
cppcheck --project=build-test-plain/compile_commands.json -i tests --quiet \
    --enable=warning,portability,performance --error-exitcode=1 || status=1
# Every fuzz target for FUZZ_SECONDS (default 60) from its seed corpus
# (tests/fuzz/corpus/<name>). -close_fd_mask=2 silences what a target prints on stderr (the
# config parser's errors); libFuzzer and the sanitizers still report on a copy of it.
echo "== fuzz runs" >&2
CC=clang cmake -S . -B build-test-fuzz -G Ninja -DFUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-test-fuzz
for target in build-test-fuzz/tests/fuzz_*; do
    name=$(basename "$target")
    corpus=tests/fuzz/corpus/${name#fuzz_}
    work=$(mktemp -d)
    if "$target" -max_total_time="${FUZZ_SECONDS:-60}" -print_final_stats=1 -close_fd_mask=2 \
        "$work" ${corpus:+$([ -d "$corpus" ] && echo "$corpus")} >"$work.log" 2>&1; then
        echo "fuzz: $name ok ($(grep -o 'number_of_executed_units: [0-9]*' "$work.log"))" >&2
    else
        tail -40 "$work.log" >&2
        echo "fuzz: $name FAILED" >&2
        status=1
    fi
    rm -rf "$work" "$work.log"
done
exit $status
