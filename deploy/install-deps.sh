#!/bin/sh
# Installs what svcdns needs on Debian 12: the build (compiler, CMake, libraries: libuv, ldns,
# libyaml, and libcurl and json-c for the Kubernetes API) and, with --tests, the tools the
# tests drive (dig, kdig, dnspython, pytest, PyYAML, NSD, dnsperf, valgrind, clang,
# clang-tidy, cppcheck, systemd-analyze).
# Installs only what is missing, so a second run costs nothing. Needs root for apt-get.
set -eu

packages="build-essential cmake ninja-build pkg-config libuv1-dev libldns-dev libyaml-dev \
libcurl4-openssl-dev libjson-c-dev"
if [ "${1:-}" = "--tests" ]; then
    packages="$packages check bind9-dnsutils knot-dnsutils ldnsutils python3 python3-dnspython \
python3-pytest python3-yaml nsd dnsperf iproute2 clang clang-format clang-tidy cppcheck valgrind systemd"
fi

missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "svcdns: missing Debian packages:$missing" >&2
    echo "svcdns: run this script as root, or: sudo apt-get install$missing" >&2
    exit 1
fi
echo "svcdns: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# NSD's package starts a system nsd on port 53; the tests start their own, so keep it off.
[ -d /run/systemd/system ] || printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod +x /usr/sbin/policy-rc.d 2>/dev/null || true
apt-get install -y -qq --no-install-recommends $missing >/dev/null
rm -f /usr/sbin/policy-rc.d
