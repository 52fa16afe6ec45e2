#!/bin/sh
# Runs every test: installs what is missing, checks layout and formatting, then builds twice
# (plain, and ASan+UBSan) and runs the unit and end-to-end tests in both; then clang-tidy and
# cppcheck over the sources, and a short run of every fuzz target.
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
# Every fuzz target for a short smoke run over its seed corpus (tests/fuzz/corpus/<name>).
echo "== fuzz smoke runs" >&2
CC=clang cmake -S . -B build-test-fuzz -G Ninja -DFUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-test-fuzz
for target in build-test-fuzz/tests/fuzz_*; do
    name=$(basename "$target")
    corpus=tests/fuzz/corpus/${name#fuzz_}
    work=$(mktemp -d)
    if "$target" -max_total_time="${FUZZ_SECONDS:-30}" -print_final_stats=1 "$work" \
        ${corpus:+$([ -d "$corpus" ] && echo "$corpus")} >"$work.log" 2>&1; then
        echo "fuzz: $name ok ($(grep -o 'number_of_executed_units: [0-9]*' "$work.log"))" >&2
    else
        tail -40 "$work.log" >&2
        echo "fuzz: $name FAILED" >&2
        status=1
    fi
    rm -rf "$work" "$work.log"
done
exit $status
