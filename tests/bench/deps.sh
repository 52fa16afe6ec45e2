#!/bin/sh
# Installs what the benchmark drives, from Debian, when it is missing: the load generator
# (dnsperf), the peer servers (NSD, Knot DNS, Unbound, dnsmasq, Knot Resolver), valgrind for
# callgrind.sh, and the svcdns build dependencies (through deploy/install-deps.sh).
# Only missing packages are installed, so a second run costs nothing. Needs root for apt-get.
set -eu
cd "$(dirname "$0")/../.."
sh deploy/install-deps.sh

# dnsmasq-base is the binary without the system service the dnsmasq package starts.
packages="dnsperf nsd knot unbound dnsmasq-base knot-resolver valgrind python3 python3-dnspython \
gcc libc6-dev util-linux procps"
missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "bench: missing Debian packages:$missing" >&2
    echo "bench: run as root, or: sudo apt-get install$missing" >&2
    exit 1
fi
echo "bench: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The server packages start a system service on port 53 when they can; the benchmark starts
# its own on other ports, so keep theirs off (without systemd, through policy-rc.d).
policy=""
if [ ! -d /run/systemd/system ] && [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy"
fi
# Other people may run apt-get on the same machine: wait for the lock rather than fail.
# shellcheck disable=SC2086 # $missing is a list of package names
apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends $missing >/dev/null
[ -z "$policy" ] || rm -f "$policy"
