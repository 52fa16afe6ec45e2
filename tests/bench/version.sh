#!/bin/sh
# Prints which svcdns sources a build from this tree has: the commit checked out, and the
# last commit that changed the sources, with "+ uncommitted changes" when there are any.
set -eu
cd "$(dirname "$0")/../.."
src="dns zones resolver CMakeLists.txt"
# shellcheck disable=SC2086 # $src is a list of paths
last=$(git log -1 --format=%h -- $src 2>/dev/null) || { echo "a tree without git" && exit 0; }
dirty=""
# shellcheck disable=SC2086
git diff --quiet HEAD -- $src || dirty=" + uncommitted changes"
echo "commit $(git rev-parse --short HEAD) (sources last changed in $last$dirty)"
