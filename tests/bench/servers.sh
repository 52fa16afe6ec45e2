# servers.sh - sourced by run.sh and callgrind.sh (bash). For each server: start_NAME writes
# its config into $RUN/NAME/ and starts it in the foreground (backgrounded by the shell),
# pinned with taskset to $SERVER_CPU, listening on 127.0.0.1 only; reload_NAME re-reads all
# of its data; change_NAME (where the server has a way) adds one record without a full
# reload. start_* records the PID it started in $RUN/NAME/pid, and stop_server signals
# exactly that PID, never a process found by name.
#
# Needs: RUN (scratch directory), DATA (dataset directory), SVCDNS_BIN, REFLECTOR_BIN.
# shellcheck shell=bash

SERVER_CPU=${SERVER_CPU:-0}
UPSTREAM_CPU=${UPSTREAM_CPU:-1}
PORT_BASE=${BENCH_PORT_BASE:-10530}   # below the kernel's ephemeral range

declare -A PORT=(
    [upstream]=$PORT_BASE [nsd]=$((PORT_BASE + 1)) [knot]=$((PORT_BASE + 2))
    [unbound]=$((PORT_BASE + 3)) [dnsmasq]=$((PORT_BASE + 5)) [kresd]=$((PORT_BASE + 6))
    [reflector]=$((PORT_BASE + 8)) [svcdns]=$((PORT_BASE + 9))
)
# shellcheck disable=SC2034 # both used by run.sh
ALL_SERVERS="svcdns nsd knot unbound dnsmasq kresd"
# shellcheck disable=SC2034
FORWARDERS="svcdns unbound dnsmasq kresd"    # the others are authoritative only

_launch() {  # _launch NAME CPU cmd... : start in the background, record the PID
    local name=$1 cpu=$2
    shift 2
    taskset -c "$cpu" "$@" >"$RUN/$name/console.log" 2>&1 &
    echo $! >"$RUN/$name/pid"
}

_nsd_conf() {  # _nsd_conf DIR PORT ZONEDIR ZONE
    cat >"$1/nsd.conf" <<EOC
server:
  ip-address: 127.0.0.1@$2
  do-ip6: no
  server-count: 1
  reuseport: no
  username: ""
  chroot: ""
  zonesdir: "$3"
  pidfile: "$1/nsd.pid"
  database: ""
  zonelistfile: "$1/zone.list"
  xfrdfile: "$1/xfrd.state"
  xfrdir: "$1"
  logfile: "$1/nsd.log"
  verbosity: 0
  hide-version: yes
  refuse-any: yes
  # the default rate limiting throttles a single-source load to ~2k qps
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
  tcp-count: 100
remote-control:
  control-enable: yes
  control-interface: $1/nsd.ctl
zone:
  name: $4
  zonefile: $4.zone
EOC
}

# The upstream: NSD with example.test (the forwarding test) and cluster.local (Knot
# Resolver's stub for names its hints do not know), on the load generator's CPU.
start_upstream() {
    local d=$RUN/upstream
    _nsd_conf "$d" "${PORT[upstream]}" "$DATA/zones" example.test
    printf 'zone:\n  name: cluster.local\n  zonefile: cluster.local.zone\n' >>"$d/nsd.conf"
    _launch upstream "$UPSTREAM_CPU" nsd -d -c "$d/nsd.conf"
}

start_svcdns() {
    _launch svcdns "$SERVER_CPU" "$SVCDNS_BIN" \
        --manifests "$DATA/manifests" --cluster-domain cluster.local --ttl 30 \
        --listen "127.0.0.1:${PORT[svcdns]}" --upstream "127.0.0.1:${PORT[upstream]}" --workers 1 \
        --manifest-cache "$RUN/svcdns-cache"
}
reload_svcdns() { kill -HUP "$(cat "$RUN/svcdns/pid")"; }

start_nsd() {
    _nsd_conf "$RUN/nsd" "${PORT[nsd]}" "$DATA/zones" cluster.local
    _launch nsd "$SERVER_CPU" nsd -d -c "$RUN/nsd/nsd.conf"
}
reload_nsd() { nsd-control -c "$RUN/nsd/nsd.conf" reload cluster.local >/dev/null; }

start_knot() {
    local d=$RUN/knot
    mkdir -p "$d/db"
    cat >"$d/knot.conf" <<EOC
server:
  rundir: "$d"
  pidfile: "$d/knot.pid"
  listen: 127.0.0.1@${PORT[knot]}
  udp-workers: 1
  tcp-workers: 1
  background-workers: 1
control:
  listen: "$d/knot.sock"
log:
  - target: "$d/knot.log"
    any: warning
database:
  storage: "$d/db"
template:
  - id: default
    storage: "$DATA/zones"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    semantic-checks: off
zone:
  - domain: cluster.local
    file: cluster.local.zone
EOC
    _launch knot "$SERVER_CPU" knotd -c "$d/knot.conf"
}
reload_knot() { knotc -c "$RUN/knot/knot.conf" zone-reload cluster.local >/dev/null; }
change_knot() {  # change_knot OWNER IP : one record, as a control-channel transaction
    local c=$RUN/knot/knot.conf
    knotc -c "$c" zone-begin cluster.local >/dev/null
    knotc -c "$c" zone-set cluster.local "$1." 30 A "$2" >/dev/null
    knotc -c "$c" zone-commit cluster.local >/dev/null
}

start_unbound() {  # local-zone static + local-data; example.test forwarded to the upstream
    local d=$RUN/unbound
    cat >"$d/unbound.conf" <<EOC
server:
  interface: 127.0.0.1@${PORT[unbound]}
  port: ${PORT[unbound]}
  do-ip6: no
  num-threads: 1
  so-reuseport: no
  username: ""
  chroot: ""
  directory: "$d"
  pidfile: "$d/unbound.pid"
  use-syslog: no
  logfile: "$d/unbound.log"
  verbosity: 0
  module-config: "iterator"
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  num-queries-per-thread: 4096
  msg-cache-size: 64m
  rrset-cache-size: 128m
  hide-version: yes
  local-zone: "test." nodefault
  include: "$DATA/unbound-local-data.conf"
remote-control:
  control-enable: yes
  control-interface: "$d/unbound.ctl"
  control-use-cert: no
forward-zone:
  name: "example.test."
  forward-addr: 127.0.0.1@${PORT[upstream]}
EOC
    _launch unbound "$SERVER_CPU" unbound -d -c "$d/unbound.conf"
}
reload_unbound() { unbound-control -c "$RUN/unbound/unbound.conf" reload >/dev/null; }
change_unbound() { unbound-control -c "$RUN/unbound/unbound.conf" local_data "$1. 30 IN A $2" >/dev/null; }

start_dnsmasq() {  # hosts file; other cluster.local names NXDOMAIN; example.test forwarded
    local d=$RUN/dnsmasq
    _launch dnsmasq "$SERVER_CPU" dnsmasq --keep-in-foreground --conf-file=/dev/null \
        --no-resolv --no-hosts --no-poll --user=root --group=root \
        --listen-address=127.0.0.1 --bind-interfaces --port="${PORT[dnsmasq]}" \
        --addn-hosts="$DATA/hosts" --local=/cluster.local/ \
        --server=/example.test/127.0.0.1#"${PORT[upstream]}" \
        --cache-size=20000 --dns-forward-max=1500 --pid-file="$d/dnsmasq.pid" \
        --log-facility="$d/dnsmasq.log"
}
reload_dnsmasq() { kill -HUP "$(cat "$RUN/dnsmasq/pid")"; }

# Knot Resolver: hits come from the hints module (hosts file); cluster.local names the hints
# do not know are stubbed to the upstream NSD (authoritative NXDOMAIN, then negatively
# cached); example.test is forwarded to the upstream.
start_kresd() {
    local d=$RUN/kresd
    cat >"$d/config.lua" <<EOC
net.ipv6 = false
net.listen('127.0.0.1', ${PORT[kresd]}, { kind = 'dns' })
cache.open(256 * MB, 'lmdb://$d/cache')
modules = { 'hints > iterate' }
hints.add_hosts('$DATA/hosts')
hints.use_nodata(true)
policy.add(policy.suffix(policy.STUB({'127.0.0.1@${PORT[upstream]}'}), {todname('cluster.local.')}))
policy.add(policy.suffix(policy.FORWARD({'127.0.0.1@${PORT[upstream]}'}), {todname('example.test.')}))
trust_anchors.remove('.')
EOC
    _launch kresd "$SERVER_CPU" kresd -n -q -c "$d/config.lua" "$d"
}
_kresd_control() {  # _kresd_control LUA : one command over kresd's control socket
    /usr/bin/python3 - "$RUN/kresd/control/$(cat "$RUN/kresd/pid")" "$1" <<'EOP'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall((sys.argv[2] + "\n").encode())
s.settimeout(120)
s.recv(4096)
EOP
}
# kresd 5 has no reload signal: it re-reads the hosts file when told so over its socket
reload_kresd() { _kresd_control "hints.add_hosts('$DATA/hosts')"; }
change_kresd() { _kresd_control "hints.set('$1 $2')"; }

start_reflector() {
    _launch reflector "$SERVER_CPU" "$REFLECTOR_BIN" "${PORT[reflector]}" 64
}

start_server() { mkdir -p "$RUN/$1"; "start_$1"; }

stop_server() {  # stop_server NAME : TERM the PID we started, wait, KILL after 5 s
    local f=$RUN/$1/pid pid
    [ -f "$f" ] || return 0
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    rm -f "$f"
}

server_pids() {  # server_pids PID : the PID and its descendants (NSD forks its workers)
    local k
    echo "$1"
    # shellcheck disable=SC2013 # the file is one line of space-separated PIDs
    for k in $(cat /proc/"$1"/task/*/children 2>/dev/null); do server_pids "$k"; done
}

status_kib() {  # status_kib NAME FIELD : /proc/PID/status FIELD (VmRSS, VmHWM) summed, KiB
    local p r sum=0
    for p in $(server_pids "$(cat "$RUN/$1/pid")"); do
        r=$(awk -v f="$2:" '$1 == f {print $2}' /proc/"$p"/status 2>/dev/null)
        sum=$((sum + ${r:-0}))
    done
    echo "$sum"
}

reset_hwm() {  # reset_hwm NAME : restart the peak-RSS count (VmHWM) of the server's processes
    local p
    for p in $(server_pids "$(cat "$RUN/$1/pid")"); do
        echo 5 >/proc/"$p"/clear_refs 2>/dev/null || true
    done
}

cpu_ticks() {  # cpu_ticks NAME : "utime stime" in clock ticks, summed over the process tree
    local p u=0 s=0 v
    for p in $(server_pids "$(cat "$RUN/$1/pid")"); do
        # comm may contain spaces ("nsd: server 1"): take the fields after the last ')'
        v=$(sed 's/.*) //' /proc/"$p"/stat 2>/dev/null | awk '{print $12 " " $13}')
        [ -n "$v" ] || continue   # gone in between
        u=$((u + ${v% *})) && s=$((s + ${v#* }))
    done
    echo "$u $s"
}
