#!/bin/sh
# make bench: server memory per idle authenticated TLS session and full
# logins per second (sequential and parallel, with p50/p99 latency), measured
# on loopback with tests/bench/xmppbench against a private xmppd (or, with
# BENCH_SERVER=prosody, a private Prosody for comparison); then the cost of
# a login with a 100-contact roster, presence probes and broadcasts
# included, on a restarted server with seeded rosters.  Builds nothing;
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
#   BENCH_ROSTER       1: also the roster scenario (default), 0: not,
#                      only: the roster scenario alone
#   BENCH_ROSTER_USERS          accounts with seeded rosters (200)
#   BENCH_ROSTER_ITEMS          contacts per roster, even (100)
#   BENCH_ROSTER_SEQ_LOGINS     roster logins, sequential run (500)
#   BENCH_ROSTER_LOGINS         roster logins, parallel run (1000)
#   BENCH_ROSTER_CONCURRENCY    roster logins in flight (20)
#   BENCH_PRESENCE_CHANGES      status changes in the presence run after
#                               the roster scenario, 0: none (2000)

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
ROSTER=${BENCH_ROSTER:-1}
R_USERS=${BENCH_ROSTER_USERS:-200}
R_ITEMS=${BENCH_ROSTER_ITEMS:-100}
R_SEQ=${BENCH_ROSTER_SEQ_LOGINS:-500}
R_LOGINS=${BENCH_ROSTER_LOGINS:-1000}
R_CONC=${BENCH_ROSTER_CONCURRENCY:-20}
P_CHANGES=${BENCH_PRESENCE_CHANGES:-2000}
USERS=${BENCH_USERS:-}
if [ -z "$USERS" ]; then
	if [ "$ROSTER" = only ]; then
		USERS=$R_USERS
	else
		USERS=$IDLE
		[ "$LOGINS" -gt "$USERS" ] && USERS=$LOGINS
		[ "$SEQ" -gt "$USERS" ] && USERS=$SEQ
	fi
fi
# The roster scenario uses user0..user(R_USERS-1).
[ "$ROSTER" != 0 ] && [ "$R_USERS" -gt "$USERS" ] && USERS=$R_USERS

BENCH=$BUILD/tests/bench/xmppbench
DOMAIN=localhost
status=0

die() {
	echo "bench: $*" >&2
	exit 1
}

. "$(dirname "$0")/lib.sh"

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
case $ROSTER in
0 | 1 | only) ;;
*) die "BENCH_ROSTER must be 0, 1 or only" ;;
esac
if [ "$ROSTER" != 0 ]; then
	command -v python3 >/dev/null ||
	    die "python3 is needed to seed the rosters (or BENCH_ROSTER=0)"
	[ $((R_ITEMS % 2)) -eq 0 ] && [ "$R_ITEMS" -lt "$R_USERS" ] &&
	    [ $((R_USERS % 2)) -eq 0 ] ||
	    die "BENCH_ROSTER_ITEMS must be even and below" \
	        "BENCH_ROSTER_USERS, which must be even"
fi
command -v openssl >/dev/null || die "openssl (the command) is needed"

work_dir xmppbench

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
pin_cores

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
	xmppd_launch "$DIR" "" "$spu"
	SRV_VERSION=$("$BUILD/xmppd" -V 2>&1 | head -n 1)
}

# Accounts user0..userN-1, password pwI, through the control socket.
# xmppctl has no batch mode: one process per account, 8 at a time.
create_xmppd_users() {
	seq 0 $((USERS - 1)) | xargs -P 8 -n 1 sh -c \
	    'err=$(printf "pw%s\n" "$2" | "$0" -s "$1" adduser \
	    "user$2@'"$DOMAIN"'" --password-stdin 2>&1 >/dev/null) ||
	    echo "user$2:" $err >&2' \
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
	until port_listening "$PORT" && port_listening "$PORT_TLS"; do
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

# Rosters for the roster scenario, written straight into the stopped
# daemon's database (through XMPP, 10,000 mutual subscriptions take
# minutes): user i has mutual ('both') subscriptions with users i-R/2 ..
# i-1 and i+1 .. i+R/2 (mod U), a symmetric relation, so every roster has
# exactly R items and both sides of each pair agree.  Only ever called
# while the daemon is stopped.
seed_xmppd_rosters() {
	python3 - "$DIR/xmppd.db" "$DOMAIN" "$R_USERS" "$R_ITEMS" <<'EOF' ||
import sqlite3, sys
db, host = sys.argv[1], sys.argv[2]
users, items = int(sys.argv[3]), int(sys.argv[4])
con = sqlite3.connect(db)
ids = dict(con.execute("SELECT user, id FROM users WHERE host = ?", (host,)))
rows, versions = [], []
for i in range(users):
    uid = ids["user%d" % i]
    versions.append((uid,))
    for off in range(1, items // 2 + 1):
        for j in ((i + off) % users, (i - off) % users):
            rows.append((uid, "user%d@%s" % (j, host)))
# sub 35 = SUB_ITEM | SUB_FROM | SUB_TO (xmppd/core/subscription.h): 'both'.
with con:
    con.executemany("INSERT OR REPLACE INTO roster (user_id, jid, name, "
                    "sub, visible, request, groups) "
                    "VALUES (?, ?, NULL, 35, 1, NULL, NULL)", rows)
    con.executemany("INSERT OR REPLACE INTO roster_version (user_id, "
                    "version) VALUES (?, 1)", versions)
con.close()
EOF
	    die "cannot seed the rosters"
}

# The same rosters as Prosody's mod_storage_internal roster files, written
# while it is stopped.
seed_prosody_rosters() {
	mkdir -p "$DIR/data/$DOMAIN/roster"
	python3 - "$DIR/data/$DOMAIN/roster" "$DOMAIN" "$R_USERS" "$R_ITEMS" \
	    <<'EOF' ||
import os, sys
path, host = sys.argv[1], sys.argv[2]
users, items = int(sys.argv[3]), int(sys.argv[4])
for i in range(users):
    with open(os.path.join(path, "user%d.dat" % i), "w") as f:
        f.write('return {\n\t[false] = {\n\t\t["version"] = 1;\n'
                '\t\t["pending"] = {};\n\t};\n')
        for off in range(1, items // 2 + 1):
            for j in ((i + off) % users, (i - off) % users):
                f.write('\t["user%d@%s"] = {\n\t\t["subscription"] = '
                        '"both";\n\t\t["groups"] = {};\n\t};\n' % (j, host))
        f.write('};\n')
EOF
	    die "cannot write prosody rosters"
}

# One xmppbench run; its summary goes to stdout and a row to $DIR/runs.csv.
bench() {
	$CLI_PIN "$BENCH" "$@" -p "$BENCH_PORT" --tls "$TLS" -d "$DOMAIN" \
	    -T "$TIMEOUT" --key-cache "$DIR/keys" --csv "$DIR/runs.csv" ||
	    status=1
	kill -0 "$SRV_PID" 2>/dev/null || die "the server died during the run"
}

# Stop the server with SIGTERM and see it go; one that ignores SIGTERM
# for 10 s fails the bench and is killed.
stop_server() {
	if ! term_wait "$SRV_PID" 100; then
		echo "bench: $SERVER did not exit within 10 s of SIGTERM" >&2
		status=1
	fi
	wait "$SRV_PID" 2>/dev/null
	SRV_PID=
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

if [ "$ROSTER" != only ]; then
	echo "-- sequential logins"
	bench login -n "$SEQ" -c 1 --users "$USERS" --pid "$SRV_PID" \
	    --label "$SERVER"
	echo "-- parallel logins"
	bench login -n "$LOGINS" -c "$CONC" --users "$USERS" --pid "$SRV_PID" \
	    --label "$SERVER"
	echo "-- idle sessions"
	bench idle -n "$IDLE" -c "$CONC" --users "$USERS" --settle "$SETTLE" \
	    -t "$SETTLE" --pid "$SRV_PID" --label "$SERVER"
	sleep 1
	rss_closed=$(rss_kib "$SRV_PID")
fi
stop_server

# The roster scenario, on a fresh server: seed the rosters while it is
# stopped, start it again, warm its caches with one plain login per
# roster account, then the measured roster logins, each run followed by
# plain logins of the same accounts as a baseline (see README.md).
if [ "$ROSTER" != 0 ]; then
	t=$(now)
	if [ "$SERVER" = prosody ]; then
		seed_prosody_rosters
		start_prosody
	else
		seed_xmppd_rosters
		start_xmppd
	fi
	echo "== roster: seeded $R_USERS rosters of $R_ITEMS mutual" \
	    "subscriptions and restarted the server in $(since "$t") s;" \
	    "pid $SRV_PID"
	echo "-- roster warm-up: $R_USERS logins"
	bench login -n "$R_USERS" -c "$R_CONC" --users "$R_USERS" \
	    --label "$SERVER-warmup"
	echo "-- roster logins, sequential ($((R_USERS / 2)) users online)"
	bench roster -n "$R_SEQ" -c 1 --users "$R_USERS" \
	    --roster-items "$R_ITEMS" --pid "$SRV_PID" --label "$SERVER"
	echo "-- baseline: plain logins of the same accounts, sequential"
	bench login -n "$R_SEQ" -c 1 --users "$R_USERS" --pid "$SRV_PID" \
	    --label "$SERVER-base"
	echo "-- roster logins, parallel ($((R_USERS / 2)) users online)"
	bench roster -n "$R_LOGINS" -c "$R_CONC" --users "$R_USERS" \
	    --roster-items "$R_ITEMS" --pid "$SRV_PID" --label "$SERVER"
	echo "-- baseline: plain logins of the same accounts, parallel"
	bench login -n "$R_LOGINS" -c "$R_CONC" --users "$R_USERS" \
	    --pid "$SRV_PID" --label "$SERVER-base"
	# The presence scenario on the same rosters: all users online, then
	# status changes broadcast to the online contacts (README.md).
	if [ "$P_CHANGES" -gt 0 ]; then
		echo "-- presence: $R_USERS users online, $P_CHANGES status" \
		    "changes to $R_ITEMS contacts each"
		$CLI_PIN "$BENCH" presence -n "$P_CHANGES" --users "$R_USERS" \
		    --roster-items "$R_ITEMS" -p "$BENCH_PORT" --tls "$TLS" \
		    -d "$DOMAIN" -T "$TIMEOUT" --key-cache "$DIR/keys" \
		    --pid "$SRV_PID" --label "$SERVER" \
		    --csv "$DIR/presence.csv" | tee "$DIR/presence.out" ||
		    status=1
		kill -0 "$SRV_PID" 2>/dev/null ||
		    die "the server died during the run"
	fi
	stop_server
fi

echo
echo "== results: $SERVER, $TLS, $pinning"
awk -F, -v closed="${rss_closed:-?}" -v settle="$SETTLE" \
    -v items="$R_ITEMS" -v rusers="$R_USERS" '
function cpu(v) { return v < 0 ? "-" : sprintf("%.2f", v) }
NR == 1 { next }
$2 ~ /-warmup$/ { next }
{
	if ($3 == "idle")
		what = "idle ramp (c=" $6 ")"
	else if ($3 == "roster")
		what = "roster login (c=" $6 ")"
	else if ($2 ~ /-base$/)
		what = "  plain, same users (c=" $6 ")"
	else if ($6 == 1)
		what = "sequential login"
	else
		what = "parallel login (c=" $6 ")"
	printf "%-28s %11s %7s %9s %9s %8s %8s %8s %8s\n", what, $7 "/" $5,
	    $8, $9, $10, $14, $11, $12, cpu($20 == "" ? -1 : $20)
	if ($3 == "idle") {
		idle = 1; n = $7; before = $15; after = $16; per = $17
	}
	if ($3 == "roster")
		roster[++nroster] = sprintf("  c=%-3d %.1f presence stanzas " \
		    "received per login; the %d online sessions received " \
		    "%d presence stanzas (expected %d)", $6, $21, $22, $23,
		    $24)
}
BEGIN {
	printf "%-28s %11s %7s %9s %9s %8s %8s %8s %8s\n", "run", "ok/n",
	    "failed", "elapsed_s", "logins/s", "mean_ms", "p50_ms", "p99_ms",
	    "cpu_ms"
}
END {
	if (idle) {
		printf "\nidle memory: %d sessions, server VmRSS %d KiB " \
		    "before the ramp, %d KiB after %s s idle (%s KiB once " \
		    "closed)\n", n, before, after, settle, closed
		met = (per >= 0 && per <= 20 * 1024) ? "met" : "NOT MET"
		printf "per idle authenticated TLS session: %d bytes = " \
		    "%.1f KiB (target <= 20 KiB: %s)\n", per, per / 1024, met
	}
	if (nroster) {
		printf "\nroster logins: %d accounts, %d mutual contacts " \
		    "each, the odd half online\n", rusers, items
		for (i = 1; i <= nroster; i++)
			print roster[i]
	}
	printf "\ncpu_ms: server CPU time (user + system) per login\n"
}' "$DIR/runs.csv"
if [ -s "$DIR/presence.out" ]; then
	sed -n 's/.* delivered=\([^ ]*\) .* rate=\([^ ]*\) .*p50=\([^ ]*\) p99=\([^ ]*\) .*server_cpu=[^(]*(\([^)]*\)).*/\
presence: \1 stanzas delivered, \2, latency p50 \3, p99 \4, server CPU \5/p' \
	    "$DIR/presence.out"
fi

mkdir -p "$(dirname "$CSV")"
if [ ! -s "$CSV" ]; then
	cat "$DIR/runs.csv" >"$CSV"
else
	tail -n +2 "$DIR/runs.csv" >>"$CSV"
fi
echo "(CSV rows appended to $CSV)"

# The chat and archive scenario (tests/bench/archive.sh, ~40 s): its own
# daemon, directory and ports; BENCH_ARCHIVE=0 skips it.
if [ "${BENCH_ARCHIVE:-1}" != 0 ] && [ "$SERVER" = xmppd ]; then
	echo
	BUILD=$BUILD sh "$(dirname "$0")/archive.sh" || status=1
fi
[ $status -eq 0 ] || echo "bench: some runs had failures, see above" >&2
exit $status
