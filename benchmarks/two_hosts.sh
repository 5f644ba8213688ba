#!/usr/bin/env bash
# Two API "hosts" in network namespaces, one PostgreSQL, one Redis Cluster: a sale approved
# through host A reaches a websocket subscriber connected to host B, and the latency is
# printed (docs/deploy.md, docs/benchmarks.md).
#
#   sudo benchmarks/two_hosts.sh [--sales N] [--dispatch external|inline]
#
# Needs root (ip netns), iproute2, redis-server and redis-cli (7+), psql, and a PostgreSQL
# reachable as PGHOST:PGPORT by PGUSER (default 127.0.0.1:5432, postgres; PGPASSWORD is
# passed on). What it builds, all removed on exit, whatever the exit (trap):
#
#   root namespace: bridge cb2h<pid> at 10.231.N.1/24 (N chosen free)
#     - a Redis Cluster: six redis-server (three masters, a replica each) bound to 10.231.N.1
#     - a TCP forwarder 10.231.N.1:P -> PostgreSQL (which listens on loopback only)
#     - database cb_two_hosts_<pid> (migrated, demo data, fresh serials for the rep)
#   namespace cb2h-a-<pid> (10.231.N.2): `channelboard serve` on :8000
#     and, with --dispatch external (default), one `channelboard dispatch`
#   namespace cb2h-b-<pid> (10.231.N.3): `channelboard serve` on :8000
#
# Both hosts run CHANNELBOARD_ENV=production with a random HS256 secret. The probe (a
# client in the root namespace, benchmarks/two_hosts.py) subscribes on both hosts, then
# claims and approves sales through host A only.
#
# Only SIGKILL leaves things behind (no trap runs); then, with the pid and N it printed:
#   ip netns del cb2h-a-<pid>; ip netns del cb2h-b-<pid>; ip link del cb2h<pid>
#   kill the redis-server processes bound to 10.231.N.1 and the forwarder (by pid)
#   psql -c 'DROP DATABASE cb_two_hosts_<pid> WITH (FORCE)'; rm -rf its /tmp/cb-two-hosts.XXXXXX
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-$REPO/.venv/bin/python}"
SALES=20
DISPATCH=external
while [ $# -gt 0 ]; do
  case "$1" in
    --sales) SALES="$2"; shift 2 ;;
    --dispatch) DISPATCH="$2"; shift 2 ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
case "$DISPATCH" in external|inline) ;; *) echo "--dispatch external|inline" >&2; exit 2 ;; esac

say() { echo "[two-hosts] $*"; }
die() { echo "[two-hosts] $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (ip netns add)"
for tool in ip redis-server redis-cli psql; do
  command -v "$tool" >/dev/null || die "needs $tool on PATH"
done
[ -x "$PY" ] || die "no Python at $PY (run ./dev help once, or set PYTHON)"

export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
RUN="$$"
NS_A="cb2h-a-$RUN"
NS_B="cb2h-b-$RUN"
BRIDGE="cb2h$RUN"
VETH_A="cb2ha$RUN"
VETH_B="cb2hb$RUN"
DB="cb_two_hosts_$RUN"
TMP=""
PIDS=()          # everything started in the root namespace or a host, stopped at exit
BRIDGE_MADE=""
DB_MADE=""
FAILED=1
STOPPED=""       # a signal, not a failure: no log tails
CLUSTER_READY=""

cleanup() {
  local code=$?
  set +e
  trap - EXIT INT TERM
  if [ "$FAILED" = 1 ] && [ -z "$STOPPED" ] && [ -n "$TMP" ] && [ -d "$TMP/logs" ]; then
    for log in "$TMP"/logs/*.log; do
      [ -s "$log" ] || continue
      # Redis's own logs only if the cluster never formed.
      case "$log" in */redis-*) [ -n "$CLUSTER_READY" ] && continue ;; esac
      echo "--- last lines of $(basename "$log")" >&2
      tail -n 15 "$log" >&2
    done
  fi
  say "cleaning up"
  [ -n "$STEP" ] && PIDS+=("$STEP")
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for _ in $(seq 100); do
    local alive=""
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ -z "$alive" ] && break
    sleep 0.1
  done
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  for ns in "$NS_A" "$NS_B"; do
    if ip netns list | grep -qw "$ns"; then
      # Anything still running in our namespace is ours (a worker a server forked).
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
      ip netns del "$ns"
    fi
  done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  for link in "$VETH_A" "$VETH_B"; do
    ip link show "$link" >/dev/null 2>&1 && ip link del "$link" 2>/dev/null
  done
  [ -n "$BRIDGE_MADE" ] && ip link del "$BRIDGE" 2>/dev/null
  [ -n "$DB_MADE" ] && psql -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
  [ -n "$TMP" ] && rm -rf "$TMP"
  say "removed namespaces $NS_A $NS_B, bridge $BRIDGE, database $DB, ${#PIDS[@]} processes"
  exit "$code"
}
trap cleanup EXIT
trap 'STOPPED=1; exit 130' INT
trap 'STOPPED=1; exit 143' TERM

# Run a step in the background and wait for it, so a signal interrupts the wait at once
# (cleanup stops the step too). `step LOG command...` writes its output to LOG: redirecting
# the call itself would also send the trap's output there, when it runs during the wait.
STEP=""
step() {
  local log="$1"; shift
  if [ "$log" = - ]; then "$@" & else "$@" >"$log" 2>&1 & fi
  STEP=$!
  wait "$STEP"
}

# A /24 no interface or route here uses yet.
SUBNET=""
for i in $(seq 0 199); do
  n=$(( (RUN + i) % 200 + 20 ))
  if ! ip -4 addr show | grep -q "inet 10\.231\.$n\." && ! ip -4 route | grep -q "^10\.231\.$n\."; then
    SUBNET="10.231.$n"; break
  fi
done
[ -n "$SUBNET" ] || die "no free 10.231.x.0/24"
GW="$SUBNET.1"
IP_A="$SUBNET.2"
IP_B="$SUBNET.3"
TMP="$(mktemp -d /tmp/cb-two-hosts.XXXXXX)"
mkdir -p "$TMP/logs"

say "network: bridge $BRIDGE $GW/24, $NS_A $IP_A, $NS_B $IP_B"
ip link add "$BRIDGE" type bridge
BRIDGE_MADE=1
ip addr add "$GW/24" dev "$BRIDGE"
ip link set "$BRIDGE" up
for host in A B; do
  if [ "$host" = A ]; then ns="$NS_A" veth="$VETH_A" addr="$IP_A"
  else ns="$NS_B" veth="$VETH_B" addr="$IP_B"; fi
  ip netns add "$ns"
  ip link add "$veth" type veth peer name "${veth}p"
  ip link set "${veth}p" netns "$ns"
  ip link set "$veth" master "$BRIDGE" up
  ip netns exec "$ns" ip link set lo up
  ip netns exec "$ns" ip link set "${veth}p" name eth0
  ip netns exec "$ns" ip addr add "$addr/24" dev eth0
  ip netns exec "$ns" ip link set eth0 up
done

# --- Redis Cluster on the bridge address -----------------------------------------------
read -r -a PORTS <<< "$("$PY" -m benchmarks.two_hosts ports "$GW" 7)"
REDIS_PORTS=("${PORTS[@]:0:6}")
PG_FORWARD_PORT="${PORTS[6]}"
REDIS_SERVER="$(command -v redis-server)"
say "Redis Cluster on $GW ports ${REDIS_PORTS[*]}"
for port in "${REDIS_PORTS[@]}"; do
  mkdir -p "$TMP/redis/$port"
  "$REDIS_SERVER" --port "$port" --bind "$GW" --protected-mode no \
    --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
    --dir "$TMP/redis/$port" --save '' --appendonly no \
    --logfile "$TMP/logs/redis-$port.log" </dev/null >/dev/null 2>&1 &
  PIDS+=($!)
done
for port in "${REDIS_PORTS[@]}"; do
  for _ in $(seq 100); do
    redis-cli -h "$GW" -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
done
step "$TMP/logs/cluster-create.log" redis-cli --cluster create \
  $(printf "$GW:%s " "${REDIS_PORTS[@]}") --cluster-replicas 1 --cluster-yes
for _ in $(seq 300); do
  ok=1
  for port in "${REDIS_PORTS[@]}"; do
    redis-cli -h "$GW" -p "$port" cluster info 2>/dev/null | grep -q 'cluster_state:ok' || ok=""
  done
  [ -n "$ok" ] && break
  sleep 0.1
done
[ -n "$ok" ] || die "the Redis Cluster did not become ready"
CLUSTER_READY=1

# --- PostgreSQL: a database of our own, reached from the hosts through a forwarder ------
say "PostgreSQL $PGHOST:$PGPORT, database $DB, forwarded at $GW:$PG_FORWARD_PORT"
psql -q -d postgres -c "CREATE DATABASE $DB" >/dev/null
DB_MADE=1
"$PY" -m benchmarks.two_hosts forward "$GW:$PG_FORWARD_PORT" "$PGHOST:$PGPORT" \
  >"$TMP/logs/pg-forward.log" 2>&1 &
PIDS+=($!)

SECRET="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export CHANNELBOARD_REDIS_URL="redis://$GW:${REDIS_PORTS[0]}/0"
export CHANNELBOARD_REDIS_CLUSTER=true
export CHANNELBOARD_REDIS_NAMESPACE="cb2h"
export CHANNELBOARD_JWT_SECRET="$SECRET"
export CHANNELBOARD_LOG_LEVEL=warning
export CHANNELBOARD_DISPATCH="$DISPATCH"
LOCAL_DB="postgresql+asyncpg://$PGUSER@$PGHOST:$PGPORT/$DB"
HOST_DB="postgresql+asyncpg://$PGUSER@$GW:$PG_FORWARD_PORT/$DB"

# The operator's steps, from the root namespace: migrate, seed, ship serials, mint tokens.
cd "$REPO"
# Always run in a subshell (`step`, `$(...)`): exec, so stopping the step stops the command.
operator() {
  CHANNELBOARD_ENV=development CHANNELBOARD_VAR_DIR="$TMP/operator" \
    CHANNELBOARD_DATABASE_URL="$LOCAL_DB" exec "$PY" -m api "$@"
}
say "migrate, demo data, $SALES serials shipped to Acme Resellers"
step "$TMP/logs/migrate.log" operator migrate
step "$TMP/logs/demo.log" operator demo
SERIALS=()
{
  echo "serial,sku,shipped_to,region,shipped_at"
  shipped="$(date -u -d '3 days ago' +%F)"
  for i in $(seq "$SALES"); do
    serial="TWOHOSTS${RUN}N$i"
    SERIALS+=("$serial")
    echo "$serial,NW-AP-6E,Acme Resellers,EMEA,$shipped"
  done
} >"$TMP/serials.csv"
step "$TMP/logs/serials.log" operator serials import "$TMP/serials.csv" --vendor northwind
ADMIN_TOKEN="$(operator token admin@northwind.example)"
REP_TOKEN="$(operator token rep@acme.example)"

# --- the two hosts -----------------------------------------------------------------------
in_host() {
  local ns="$1" name="$2"; shift 2
  ip netns exec "$ns" env CHANNELBOARD_ENV=production CHANNELBOARD_VAR_DIR="$TMP/$name" \
    CHANNELBOARD_DATABASE_URL="$HOST_DB" "$PY" -m api "$@" \
    </dev/null >"$TMP/logs/$name.log" 2>&1 &
  PIDS+=($!)
}
say "host A: channelboard serve$([ "$DISPATCH" = external ] && echo ' + channelboard dispatch'); host B: channelboard serve (CHANNELBOARD_DISPATCH=$DISPATCH)"
in_host "$NS_A" host-a serve --host 0.0.0.0 --port 8000
in_host "$NS_B" host-b serve --host 0.0.0.0 --port 8000
[ "$DISPATCH" = external ] && in_host "$NS_A" dispatcher dispatch
step - "$PY" -m benchmarks.two_hosts ready "http://$IP_A:8000/readyz" "http://$IP_B:8000/readyz" \
  || die "the hosts did not become ready"
say "both hosts ready (/readyz 200)"

step - "$PY" -m benchmarks.two_hosts probe --a "http://$IP_A:8000" --b "http://$IP_B:8000" \
  --admin-token "$ADMIN_TOKEN" --rep-token "$REP_TOKEN" \
  --serials "$(IFS=,; echo "${SERIALS[*]}")"
say "load: $(uptime)"
FAILED=0
