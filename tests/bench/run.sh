#!/bin/sh
# make bench: server memory per idle authenticated TLS session and full
# logins per second (sequential and parallel, with p50/p99 latency), measured
# on loopback with tests/bench/xmppbench against a private xmppd (or, with
# BENCH_SERVER=prosody, a private Prosody for comparison).  Builds nothing;
# `make bench` builds first.  See tests/bench/README.md.
#
# Knobs (environment):
#   BENCH_SERVER       xmppd (default) or prosody
#   BENCH_IDLE         idle sessions held open (10000)
#   BENCH_LOGINS       logins in the parallel run (5000)
#   BENCH_SEQ_LOGINS   logins in the sequential run (2000)
#   BENCH_CONCURRENCY  logins in flight in the parallel run and ramp (100)
#   BENCH_USERS        accounts created, user0..userN-1 with password pwI
#                      (default: the largest of the three counts above)
#   BENCH_TLS          starttls (default) or direct (XEP-0368)
#   BENCH_SETTLE       seconds idle before the RSS is read (5)
#   BENCH_TIMEOUT      time limit of each xmppbench run, seconds (300)
#   BENCH_ITERATIONS   SCRAM iterations of the accounts (4096)
#   BENCH_CSV          results file (BUILD/bench/results.csv)

set -u

BUILD=${BUILD:-build}
SERVER=${BENCH_SERVER:-xmppd}
IDLE=${BENCH_IDLE:-10000}
LOGINS=${BENCH_LOGINS:-5000}
SEQ=${BENCH_SEQ_LOGINS:-2000}
CONC=${BENCH_CONCURRENCY:-100}
TLS=${BENCH_TLS:-starttls}
SETTLE=${BENCH_SETTLE:-5}
TIMEOUT=${BENCH_TIMEOUT:-300}
ITER=${BENCH_ITERATIONS:-4096}
CSV=${BENCH_CSV:-$BUILD/bench/results.csv}
USERS=${BENCH_USERS:-}
if [ -z "$USERS" ]; then
	USERS=$IDLE
	[ "$LOGINS" -gt "$USERS" ] && USERS=$LOGINS
	[ "$SEQ" -gt "$USERS" ] && USERS=$SEQ
fi

BENCH=$BUILD/tests/bench/xmppbench
DOMAIN=localhost
status=0

die() {
	echo "bench: $*" >&2
	exit 1
}

now() {
	date +%s.%N
}

since() {
	awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'
}

# A TCP port with nothing bound to it, below the ephemeral range so the
# load generator's own connections cannot take it.
port_in_use() {
	hex=$(printf '%04X' "$1")
	cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
	    awk -v p=":$hex" '$2 ~ p"$" { f = 1 } END { exit !f }'
}

pick_port() {
	tries=0
	while [ $tries -lt 200 ]; do
		p=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 12000))
		if ! port_in_use "$p" && [ "$p" != "${1:-}" ]; then
			echo "$p"
			return 0
		fi
		tries=$((tries + 1))
	done
	die "no free port found"
}

rss_kib() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null
}

case $SERVER in
xmppd)
	[ -x "$BUILD/xmppd" ] && [ -x "$BUILD/xmppctl" ] ||
	    die "$BUILD/xmppd or $BUILD/xmppctl missing: run make bench"
	;;
prosody)
	command -v prosody >/dev/null ||
	    die "prosody not installed (apt-get install prosody)"
	;;
*)
	die "BENCH_SERVER must be xmppd or prosody"
	;;
esac
[ -x "$BENCH" ] || die "$BENCH missing: run make bench"
case $TLS in
starttls | direct) ;;
*) die "BENCH_TLS must be starttls or direct" ;;
esac
command -v openssl >/dev/null || die "openssl (the command) is needed"

DIR=$(mktemp -d "${TMPDIR:-/tmp}/xmppbench.XXXXXX") || die "mktemp failed"
SRV_PID=

cleanup() {
	if [ -n "$SRV_PID" ] && kill -0 "$SRV_PID" 2>/dev/null; then
		kill -TERM "$SRV_PID" 2>/dev/null
		i=0
		while kill -0 "$SRV_PID" 2>/dev/null && [ $i -lt 100 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill -0 "$SRV_PID" 2>/dev/null && kill -KILL "$SRV_PID"
	fi
	rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Descriptors: the server holds BENCH_IDLE sessions plus its files; the
# load generator the same number.  Root may raise the hard limit.
need=$((IDLE + CONC + 1024))
[ $need -lt 65536 ] && need=65536
ulimit -n "$need" 2>/dev/null || ulimit -n "$(ulimit -H -n)" 2>/dev/null
nofile=$(ulimit -n)
if [ "$nofile" != unlimited ] && [ "$nofile" -lt $((IDLE + CONC + 64)) ]; then
	echo "bench: warning: open files limited to $nofile," \
	    "below the $((IDLE + CONC + 64)) the idle run needs" >&2
fi

# Pinning: the server on core 0, the load generator on core 1.
SRV_PIN=
CLI_PIN=
cores=$(nproc 2>/dev/null || echo 1)
if [ "$cores" -ge 2 ] && command -v taskset >/dev/null; then
	SRV_PIN="taskset -c 0"
	CLI_PIN="taskset -c 1"
	pinning="server pinned to core 0, load generator to core 1 ($cores cores)"
else
	pinning="not pinned ($cores core(s) or no taskset): server and load" \
	    "generator share the CPU"
fi

# Self-signed EC P-256 certificate, as `make var` creates.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -nodes -days 30 -subj "/CN=$DOMAIN" -addext "subjectAltName=DNS:$DOMAIN" \
    -keyout "$DIR/key.pem" -out "$DIR/cert.pem" 2>/dev/null ||
    die "cannot create a certificate"

PORT=$(pick_port)
PORT_TLS=$(pick_port "$PORT")
if [ "$TLS" = direct ]; then
	BENCH_PORT=$PORT_TLS
else
	BENCH_PORT=$PORT
fi

start_xmppd() {
	spu=
	[ "$USERS" -lt "$IDLE" ] && spu="    sessions-per-user 1000"
	cat >"$DIR/xmppd.conf" <<EOF
log-level warn
storage "$DIR/xmppd.db"
control-socket "$DIR/xmppd.sock"
scram-iterations $ITER
listen c2s $PORT address 127.0.0.1 starttls required
listen c2s-tls $PORT_TLS address 127.0.0.1
limits {
    connections-per-ip 0
    max-connections 0
$spu
}
host "$DOMAIN" {
    certificate "$DIR/cert.pem"
    key "$DIR/key.pem"
}
EOF
	$SRV_PIN "$BUILD/xmppd" -d -f "$DIR/xmppd.conf" 2>"$DIR/server.log" &
	SRV_PID=$!
	i=0
	until "$BUILD/xmppctl" -s "$DIR/xmppd.sock" status >/dev/null 2>&1; do
		kill -0 "$SRV_PID" 2>/dev/null || {
			cat "$DIR/server.log" >&2
			die "xmppd exited at start-up"
		}
		[ $i -ge 100 ] && die "xmppd did not answer within 10 s"
		sleep 0.1
		i=$((i + 1))
	done
	SRV_VERSION=$("$BUILD/xmppd" -V 2>&1 | head -n 1)
}

# Accounts user0..userN-1, password pwI, through the control socket.
# xmppctl has no batch mode: one process per account, 8 at a time.
create_xmppd_users() {
	seq 0 $((USERS - 1)) | xargs -P 8 -n 1 sh -c \
	    'printf "pw%s\n" "$2" | "$0" -s "$1" adduser "user$2@'"$DOMAIN"'" \
	    --password-stdin >/dev/null 2>&1 || echo "user$2" >&2' \
	    "$BUILD/xmppctl" "$DIR/xmppd.sock" 2>"$DIR/adduser-failed"
	failed=$(wc -l <"$DIR/adduser-failed")
	[ "$failed" -eq 0 ] || die "$failed accounts could not be created" \
	    "(first: $(head -n 1 "$DIR/adduser-failed"))"
}

start_prosody() {
	mkdir -p "$DIR/data" "$DIR/certs"
	cp "$DIR/cert.pem" "$DIR/certs/$DOMAIN.crt"
	cp "$DIR/key.pem" "$DIR/certs/$DOMAIN.key"
	# Nagle off and a deep backlog, as xmppd; SCRAM-SHA-256 accounts.
	cat >"$DIR/prosody.cfg.lua" <<EOF
run_as_root = true
pidfile = "$DIR/prosody.pid"
data_path = "$DIR/data"
log = { warn = "$DIR/server.log" }
certificates = "$DIR/certs"
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "ping";
    "presence"; "posix"; }
modules_disabled = { "s2s"; "offline"; "c2s_limits"; }
interfaces = { "127.0.0.1" }
c2s_interfaces = { "127.0.0.1" }
c2s_ports = { $PORT }
c2s_direct_tls_ports = { $PORT_TLS }
s2s_ports = {}
http_ports = {}
https_ports = {}
c2s_require_encryption = true
allow_registration = false
authentication = "internal_hashed"
password_hash = "SHA-256"
default_iteration_count = $ITER
storage = "internal"
network_settings = { read_timeout = 3600; nagle = false; tcp_backlog = 1024 }
VirtualHost "$DOMAIN"
    ssl = { certificate = "$DIR/cert.pem"; key = "$DIR/key.pem"; }
EOF
	$SRV_PIN prosody -F --config "$DIR/prosody.cfg.lua" \
	    >"$DIR/server.out" 2>&1 &
	SRV_PID=$!
	i=0
	until port_in_use "$PORT" && port_in_use "$PORT_TLS"; do
		kill -0 "$SRV_PID" 2>/dev/null || {
			cat "$DIR/server.out" "$DIR/server.log" >&2
			die "prosody exited at start-up"
		}
		[ $i -ge 100 ] && die "prosody did not listen within 10 s"
		sleep 0.1
		i=$((i + 1))
	done
	SRV_VERSION="prosody $(dpkg-query -W -f '${Version}' prosody 2>/dev/null)"
}

# Prosody's internal_hashed account files, written directly (prosodyctl
# takes a second per account): SCRAM-SHA-256 StoredKey and ServerKey.
create_prosody_users() {
	command -v python3 >/dev/null || die "python3 is needed for prosody"
	mkdir -p "$DIR/data/$DOMAIN/accounts"
	python3 - "$DIR/data/$DOMAIN/accounts" "$USERS" "$ITER" <<'EOF' ||
import hashlib, hmac, os, sys, uuid
path, users, iterations = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(users):
    salt = str(uuid.uuid4())
    salted = hashlib.pbkdf2_hmac("sha256", b"pw%d" % i, salt.encode(),
                                 iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).hexdigest()
    with open(os.path.join(path, "user%d.dat" % i), "w") as f:
        f.write('return {\n\t["salt"] = "%s";\n\t["iteration_count"] = %d;\n'
                '\t["stored_key"] = "%s";\n\t["server_key"] = "%s";\n};\n'
                % (salt, iterations, stored_key, server_key.hex()))
EOF
	    die "cannot write prosody accounts"
}

# One xmppbench run; its summary goes to stdout and a row to $DIR/runs.csv.
bench() {
	$CLI_PIN "$BENCH" "$@" -p "$BENCH_PORT" --tls "$TLS" -d "$DOMAIN" \
	    -T "$TIMEOUT" --key-cache "$DIR/keys" --csv "$DIR/runs.csv" ||
	    status=1
	kill -0 "$SRV_PID" 2>/dev/null || die "the server died during the run"
}

echo "== xmppbench: $SERVER, $TLS, loopback; $pinning"
echo "== open files: $nofile; work directory $DIR"
if [ "$SERVER" = prosody ]; then
	t=$(now)
	create_prosody_users
	echo "== created $USERS accounts in $(since "$t") s (account files)"
	start_prosody
else
	start_xmppd
	t=$(now)
	create_xmppd_users
	echo "== created $USERS accounts in $(since "$t") s" \
	    "(xmppctl adduser, 8 in parallel, $ITER SCRAM iterations)"
fi
echo "== server: $SRV_VERSION, pid $SRV_PID, VmRSS $(rss_kib "$SRV_PID") KiB"

# Warm-up: one login per account, so the client derives each SCRAM key
# once (PBKDF2, kept in the key cache) and the server's database pages are
# in memory before anything is measured.  Reported, not tabled.
echo "-- warm-up: $USERS logins (client PBKDF2 included)"
bench login -n "$USERS" -c "$CONC" --users "$USERS" --label "$SERVER-warmup"

echo "-- sequential logins"
bench login -n "$SEQ" -c 1 --users "$USERS" --label "$SERVER"
echo "-- parallel logins"
bench login -n "$LOGINS" -c "$CONC" --users "$USERS" --label "$SERVER"
echo "-- idle sessions"
bench idle -n "$IDLE" -c "$CONC" --users "$USERS" --settle "$SETTLE" \
    -t "$SETTLE" --pid "$SRV_PID" --label "$SERVER"
sleep 1
rss_closed=$(rss_kib "$SRV_PID")

# Stop the server with SIGTERM and see it go.
kill -TERM "$SRV_PID"
i=0
while kill -0 "$SRV_PID" 2>/dev/null && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
if kill -0 "$SRV_PID" 2>/dev/null; then
	echo "bench: $SERVER did not exit within 10 s of SIGTERM" >&2
	status=1
else
	wait "$SRV_PID" 2>/dev/null
fi
SRV_PID=

echo
echo "== results: $SERVER, $TLS, $pinning"
awk -F, -v closed="${rss_closed:-?}" -v settle="$SETTLE" '
NR == 1 { next }
$2 ~ /-warmup$/ { next }
{
	if ($3 == "idle")
		what = "idle ramp (c=" $6 ")"
	else if ($6 == 1)
		what = "sequential login"
	else
		what = "parallel login (c=" $6 ")"
	printf "%-26s %11s %7s %9s %9s %8s %8s %8s\n", what, $7 "/" $5, $8,
	    $9, $10, $14, $11, $12
	if ($3 == "idle") {
		idle = 1; n = $7; before = $15; after = $16; per = $17
	}
}
BEGIN {
	printf "%-26s %11s %7s %9s %9s %8s %8s %8s\n", "run", "ok/n",
	    "failed", "elapsed_s", "logins/s", "mean_ms", "p50_ms", "p99_ms"
}
END {
	if (!idle)
		exit
	printf "\nidle memory: %d sessions, server VmRSS %d KiB before the " \
	    "ramp, %d KiB after %s s idle (%s KiB once closed)\n", n, before,
	    after, settle, closed
	met = (per >= 0 && per <= 24 * 1024) ? "met" : "NOT MET"
	printf "per idle authenticated TLS session: %d bytes = %.1f KiB " \
	    "(target <= 24 KiB: %s)\n", per, per / 1024, met
}' "$DIR/runs.csv"

mkdir -p "$(dirname "$CSV")"
if [ ! -s "$CSV" ]; then
	cat "$DIR/runs.csv" >"$CSV"
else
	tail -n +2 "$DIR/runs.csv" >>"$CSV"
fi
echo "(CSV rows appended to $CSV)"
[ $status -eq 0 ] || echo "bench: some runs had failures, see above" >&2
exit $status
