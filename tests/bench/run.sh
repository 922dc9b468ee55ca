#!/bin/sh
# make bench: server memory per idle authenticated TLS session and full
# logins per second (sequential and parallel, with p50/p99 latency), measured
# on loopback with tests/bench/xmppbench against a private xmppd (or, with
# BENCH_SERVER=prosody, a private Prosody for comparison); then the cost of
# a login with a 100-contact roster, presence probes and broadcasts
# included, on a restarted server with seeded rosters.  With xmppd also:
# idle memory with stream management (XEP-0198) on every session, at the
# normal ramp and a fast one; the server CPU of a reconnect that resumes
# TLS and the XEP-0198 session against a full login and a bare TLS
# handshake; what client state indication (XEP-0352) saves an
# inactive client with 100 contacts changing status; and PEP (XEP-0163):
# notifications per second and server CPU per notification with 1,000
# users of 20 contacts online, and the cost of a login that gets the
# last items of its contacts' nodes against one that does not; and group
# chat (XEP-0045): groupchat copies per second and server CPU per copy in
# rooms of 10, 100 and 1,000 occupants, server CPU per join with history,
# memory per occupant; and WebSocket (RFC 7395, tests/bench/ws.sh): chat
# over TCP+TLS against wss and ws, server CPU per delivered message and
# the ratio, and idle memory per session and the difference.  Builds
# nothing; `make bench` builds first.  See tests/bench/README.md.
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
#   BENCH_SM           1: the idle runs with stream management (default),
#                      0: not, only: them (and resume) without the login
#                      and plain idle runs
#   BENCH_SM_IDLE      sessions of those runs (BENCH_IDLE)
#   BENCH_SM_FAST_CONCURRENCY   logins in flight in the fast ramp (500)
#   BENCH_SM_SETTLE    seconds idle before the RSS is read (BENCH_SETTLE)
#   BENCH_SM_WARMUP    logins on each fresh server before the ramp
#                      (BENCH_USERS: every account once, as before the
#                      plain idle run)
#   BENCH_RESUME       sessions dropped and resumed, 0: none (5000)
#   BENCH_RESUME_ROUNDS  rounds of the resume runs; medians (3)
#   BENCH_CSI          1: the csi runs after the roster scenario
#                      (default), 0: not
#   BENCH_CSI_CHANGES  status changes of each contact in them (10)
#   BENCH_CSI_CSV      csi results file (BUILD/bench/csi.csv)
#   BENCH_PEP          1: the PEP runs (default), 0: not, only: them
#                      alone (after the warm-up)
#   BENCH_PEP_USERS    users online in the pep run, with seeded rosters
#                      (1000)
#   BENCH_PEP_ITEMS    contacts per roster in the PEP runs, even (20)
#   BENCH_PEP_PUBLISHES  items each user publishes in the pep run (5)
#   BENCH_PEP_ITEM_BYTES payload of each item (1024)
#   BENCH_PEP_NODES    nodes of each user for the login runs (10)
#   BENCH_PEP_LOGINS   logins of each pep-login run (1000)
#   BENCH_PEP_CONCURRENCY  logins in flight in them (20)
#   BENCH_PEP_ROUNDS   rounds of the pep-login runs; medians (3)
#   BENCH_PEP_CSV      pep results file (BUILD/bench/pep.csv)
#   BENCH_MUC          auto: the muc runs, skipped with a note when the
#                      server has no MUC service (default); 1: the same,
#                      a missing service fails the bench; 0: not; only:
#                      them alone (after the warm-up)
#   BENCH_MUC_SIZES    occupants of the room of each muc run (10 100 1000)
#   BENCH_MUC_COPIES   groupchat copies per muc run; messages = copies /
#                      occupants (200000)
#   BENCH_MUC_SENDERS  occupants sending (10), BENCH_MUC_WINDOW messages
#                      in flight each (4)
#   BENCH_MUC_JOINS    sessions that join with history one at a time and
#                      leave, per round (10); BENCH_MUC_JOIN_ROUNDS (10);
#                      BENCH_MUC_HISTORY their maxstanzas (20)
#   BENCH_MUC_DOMAIN   the MUC service (conference.localhost)
#   BENCH_MUC_TIMEOUT  time limit of each muc run, seconds (900)
#   BENCH_MUC_CSV      muc results file (BUILD/bench/muc.csv)
#   BENCH_SOURCES      source addresses 127.0.0.1 .. 127.0.0.N (default:
#                      xmppbench's, one per 25,000 connections)
#   BENCH_ACCOUNTS     xmppctl, sql (written into the stopped server's
#                      database by peers_seed.py), auto: sql above
#                      20,000 accounts (auto)
#   BENCH_WARMUP       logins of the first warm-up (BENCH_USERS)
#   BENCH_WS           the WebSocket scenario (tests/bench/ws.sh: chat
#                      over TCP+TLS against wss and ws, CPU per message
#                      and ratio; idle bytes per session and difference;
#                      its BENCH_WS_* knobs): auto (default) at the end
#                      with xmppd, a note with another server; 1: the
#                      same, failing with another server; 0: not; only:
#                      it alone
#   BENCH_UPLOAD       1 or auto: the upload scenario at the end
#                      (tests/bench/upload.sh: parallel HTTPS PUTs and
#                      GETs, chat p99 while they run), 0: not, only: it
#                      alone (auto); its knobs BENCH_UPLOAD_FILES,
#                      BENCH_UPLOAD_SIZE, BENCH_UPLOAD_RATE,
#                      BENCH_UPLOAD_CHAT_SECONDS, BENCH_UPLOAD_PAIRS
#   BENCH_S2S          1: the server-to-server scenario at the end
#                      (tests/bench/s2s.py: chat across two daemons
#                      against chat on one, CPU per message of both; N
#                      outgoing streams, time and memory per stream),
#                      0: not, only: it alone (1); its knobs
#                      BENCH_S2S_PAIRS, _MESSAGES, _WINDOW, _ROUNDS,
#                      _STREAMS, _ONLY

set -u

BUILD=${BUILD:-build}
SERVER=${BENCH_SERVER:-xmppd}
WS=${BENCH_WS:-auto}
case $WS in
0 | 1 | auto) ;;
only)
	[ "$SERVER" = xmppd ] ||
	    { echo "bench: BENCH_WS=only: the scenario is xmppd's" >&2; exit 1; }
	BUILD=$BUILD exec sh "$(dirname "$0")/ws.sh"
	;;
*) echo "bench: BENCH_WS must be 0, 1, auto or only" >&2; exit 1 ;;
esac
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
SM=${BENCH_SM:-1}
SM_IDLE=${BENCH_SM_IDLE:-$IDLE}
SM_FAST=${BENCH_SM_FAST_CONCURRENCY:-500}
SM_SETTLE=${BENCH_SM_SETTLE:-$SETTLE}
SM_WARMUP=${BENCH_SM_WARMUP:-}
RESUME=${BENCH_RESUME:-5000}
ROUNDS=${BENCH_RESUME_ROUNDS:-3}
CSI=${BENCH_CSI:-1}
CSI_CHANGES=${BENCH_CSI_CHANGES:-10}
PEP=${BENCH_PEP:-1}
PEP_USERS=${BENCH_PEP_USERS:-1000}
PEP_ITEMS=${BENCH_PEP_ITEMS:-20}
PEP_PUBLISHES=${BENCH_PEP_PUBLISHES:-5}
PEP_ITEM_BYTES=${BENCH_PEP_ITEM_BYTES:-1024}
PEP_NODES=${BENCH_PEP_NODES:-10}
PEP_LOGINS=${BENCH_PEP_LOGINS:-1000}
PEP_CONC=${BENCH_PEP_CONCURRENCY:-20}
PEP_ROUNDS=${BENCH_PEP_ROUNDS:-3}
MUC=${BENCH_MUC:-auto}
MUC_SIZES=${BENCH_MUC_SIZES:-10 100 1000}
MUC_COPIES=${BENCH_MUC_COPIES:-200000}
MUC_SENDERS=${BENCH_MUC_SENDERS:-10}
MUC_WINDOW=${BENCH_MUC_WINDOW:-4}
MUC_JOINS=${BENCH_MUC_JOINS:-10}
MUC_JOIN_ROUNDS=${BENCH_MUC_JOIN_ROUNDS:-10}
MUC_HISTORY=${BENCH_MUC_HISTORY:-20}
MUC_DOMAIN=${BENCH_MUC_DOMAIN:-conference.localhost}
MUC_TIMEOUT=${BENCH_MUC_TIMEOUT:-900}
SOURCES=${BENCH_SOURCES:-}
ACCOUNTS=${BENCH_ACCOUNTS:-auto}
HERE=$(dirname "$0")
UPLOAD=${BENCH_UPLOAD:-auto}
S2S=${BENCH_S2S:-1}
case $BUILD in /*) ABS_BUILD=$BUILD ;; *) ABS_BUILD=$PWD/$BUILD ;; esac
# The server-to-server scenario (two daemons and a dnsmasq of its own).
s2s_bench() {
	echo "== server-to-server (tests/bench/s2s.py)"
	XMPPD_BIN=$ABS_BUILD/xmppd XMPPCTL_BIN=$ABS_BUILD/xmppctl \
	    XMPPBENCH_BIN=$ABS_BUILD/tests/bench/xmppbench \
	    /usr/bin/python3 "$HERE/s2s.py"
}
if [ "$S2S" = only ]; then
	[ "$SERVER" = xmppd ] || { echo "bench: the s2s scenario is" \
	    "xmppd's only" >&2; exit 1; }
	s2s_bench
	exit
fi
# BENCH_UPLOAD=only: the upload scenario alone (its own daemon).
if [ "$UPLOAD" = only ]; then
	[ "$SERVER" = xmppd ] || { echo "bench: the upload scenario is" \
	    "xmppd's only" >&2; exit 1; }
	BUILD=$BUILD exec sh "$HERE/upload.sh"
fi
# Stream management, resumption and CSI are xmppd's (Debian's Prosody
# has no mod_smacks).
if [ "$SERVER" != xmppd ]; then
	SM=0
	RESUME=0
	CSI=0
	PEP=0
fi
# BENCH_PEP=only: the PEP runs alone; BENCH_MUC=only: the muc runs.
if [ "$PEP" = only ]; then
	ROSTER=0
	SM=0
	RESUME=0
fi
if [ "$MUC" = only ]; then
	ROSTER=0
	SM=0
	RESUME=0
	PEP=0
fi
MUC_USERS=0
if [ "$MUC" != 0 ]; then
	for n in $MUC_SIZES; do
		[ "$n" -ge 1 ] 2>/dev/null ||
		    { echo "bench: BENCH_MUC_SIZES: sizes of at least 1" >&2
		    exit 1; }
		[ $((n + MUC_JOINS)) -gt "$MUC_USERS" ] &&
		    MUC_USERS=$((n + MUC_JOINS))
	done
fi
# Descriptors: the server holds BENCH_IDLE sessions plus its files; the
# load generator the same number.  Root may raise the hard limit (with
# CAP_SYS_RESOURCE); where it cannot, the idle runs are capped below the
# limit, saying so.
most=$IDLE
[ "$SM" != 0 ] && [ "$SM_IDLE" -gt "$most" ] && most=$SM_IDLE
ramp=$CONC
[ "$SM" != 0 ] && [ "$SM_FAST" -gt "$ramp" ] && ramp=$SM_FAST
need=$((most + ramp + 1024))
[ $need -lt 65536 ] && need=65536
ulimit -n "$need" 2>/dev/null || ulimit -n "$(ulimit -H -n)" 2>/dev/null
nofile=$(ulimit -n)
if [ "$nofile" != unlimited ] && [ "$nofile" -lt $((most + 256)) ]; then
	cap=$((nofile - 256))
	echo "bench: open files limited to $nofile (hard limit $(ulimit -H -n)," \
	    "not raised: $(ulimit -n $((nofile + 1)) 2>&1 | sed 's/.*: //'));" \
	    "idle runs capped at $cap sessions instead of $most" >&2
	[ "$IDLE" -gt "$cap" ] && IDLE=$cap
	[ "$SM_IDLE" -gt "$cap" ] && SM_IDLE=$cap
fi
USERS=${BENCH_USERS:-}
if [ -z "$USERS" ]; then
	if [ "$ROSTER" = only ]; then
		USERS=$R_USERS
	elif [ "$PEP" = only ]; then
		USERS=$PEP_USERS
	elif [ "$MUC" = only ]; then
		USERS=$MUC_USERS
	else
		USERS=0
		if [ "$SM" != only ]; then
			USERS=$IDLE
			[ "$LOGINS" -gt "$USERS" ] && USERS=$LOGINS
			[ "$SEQ" -gt "$USERS" ] && USERS=$SEQ
		fi
		[ "$SM" != 0 ] && [ "$SM_IDLE" -gt "$USERS" ] && USERS=$SM_IDLE
		[ "$RESUME" -gt "$USERS" ] && USERS=$RESUME
	fi
fi
# The roster scenario uses user0..user(R_USERS-1).
[ "$ROSTER" != 0 ] && [ "$R_USERS" -gt "$USERS" ] && USERS=$R_USERS
[ "$PEP" != 0 ] && [ "$PEP_USERS" -gt "$USERS" ] && USERS=$PEP_USERS
[ "$MUC_USERS" -gt "$USERS" ] && USERS=$MUC_USERS
WARMUP=${BENCH_WARMUP:-$USERS}
SM_WARMUP=${SM_WARMUP:-$USERS}
[ "$ROSTER" = only ] && SM=0 && RESUME=0

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
case $SM in
0 | 1 | only) ;;
*) die "BENCH_SM must be 0, 1 or only" ;;
esac
case $PEP in
0 | 1 | only) ;;
*) die "BENCH_PEP must be 0, 1 or only" ;;
esac
case $MUC in
0 | 1 | auto | only) ;;
*) die "BENCH_MUC must be 0, 1, auto or only" ;;
esac
if [ "$PEP" != 0 ]; then
	command -v python3 >/dev/null ||
	    die "python3 is needed to seed the rosters (or BENCH_PEP=0)"
	[ $((PEP_ITEMS % 2)) -eq 0 ] && [ "$PEP_ITEMS" -lt "$PEP_USERS" ] ||
	    die "BENCH_PEP_ITEMS must be even and below BENCH_PEP_USERS"
fi
case $ACCOUNTS in
auto) ACCOUNTS=xmppctl
	[ "$USERS" -gt 20000 ] && [ "$SERVER" = xmppd ] && ACCOUNTS=sql ;;
xmppctl | sql) ;;
*) die "BENCH_ACCOUNTS must be xmppctl, sql or auto" ;;
esac
if [ "$ACCOUNTS" = sql ]; then
	command -v python3 >/dev/null ||
	    die "python3 is needed for BENCH_ACCOUNTS=sql"
fi
SRC_OPT=
[ -n "$SOURCES" ] && SRC_OPT="--sources $SOURCES"
if [ "$CSI" != 0 ] && [ "$ROSTER" != 0 ]; then
	[ "$R_ITEMS" -ge 2 ] || die "the csi runs need BENCH_ROSTER_ITEMS >= 2"
fi
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
	if [ "$USERS" -lt "$IDLE" ] ||
	    { [ "$SM" != 0 ] && [ "$USERS" -lt "$SM_IDLE" ]; }; then
		spu="    sessions-per-user 1000"
	fi
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
	# The control socket takes 8 connections per uid, and one that
	# xmppctl just closed may not be reaped yet: those turned away
	# ("busy") are tried again, one at a time.
	sed -n 's/^user\([0-9]*\):.*too many control connections.*/\1/p' \
	    "$DIR/adduser-failed" >"$DIR/adduser-retry"
	grep -v 'too many control connections' "$DIR/adduser-failed" \
	    >"$DIR/adduser-failed.1"
	while read -r i; do
		err=$(printf "pw%s\n" "$i" | "$BUILD/xmppctl" -s \
		    "$DIR/xmppd.sock" adduser "user$i@$DOMAIN" \
		    --password-stdin 2>&1 >/dev/null) ||
		    echo "user$i:" $err >>"$DIR/adduser-failed.1"
	done <"$DIR/adduser-retry"
	mv "$DIR/adduser-failed.1" "$DIR/adduser-failed"
	failed=$(wc -l <"$DIR/adduser-failed")
	[ "$failed" -eq 0 ] || die "$failed accounts could not be created" \
	    "(first: $(head -n 1 "$DIR/adduser-failed"))"
}

# Many accounts (BENCH_ACCOUNTS=sql): xmppctl takes 5 ms an account, so
# they are written into the stopped daemon's database instead, with
# peers_seed.py as bench-peers does (SCRAM-SHA-1 and -256 keys derived
# once with python3, 2 processes; its key cache is the load generator's).
# The daemon is started again afterwards.
create_xmppd_users_sql() {
	stop_server
	python3 "$HERE/peers_seed.py" creds "$DIR/creds.tsv" "$ITER" \
	    "user:$USERS" || die "cannot derive the accounts' keys"
	python3 "$HERE/peers_seed.py" keycache "$DIR/creds.tsv" sha256 \
	    "$DIR/keys" || die "cannot write the key cache"
	python3 "$HERE/peers_seed.py" xmppd "$DIR/xmppd.db" "$DIR/creds.tsv" \
	    user 0 0 || die "cannot write the accounts"
	rm -f "$DIR/creds.tsv"
	start_xmppd
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
Component "$MUC_DOMAIN" "muc"
    restrict_room_creation = false
    muc_room_default_history_length = 20
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
# while the daemon is stopped.  seed_xmppd_rosters [U R clear]: U users
# of R contacts (R_USERS, R_ITEMS), with "clear" after removing every
# roster item first (the PEP runs, after the roster scenario's).
seed_xmppd_rosters() {
	python3 - "$DIR/xmppd.db" "$DOMAIN" "${1:-$R_USERS}" "${2:-$R_ITEMS}" \
	    "${3:-}" <<'EOF' ||
import sqlite3, sys
db, host = sys.argv[1], sys.argv[2]
users, items = int(sys.argv[3]), int(sys.argv[4])
con = sqlite3.connect(db)
if sys.argv[5] == "clear":
    with con:
        con.execute("DELETE FROM roster")
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
	# shellcheck disable=SC2086 # SRC_OPT is empty or two words
	$CLI_PIN "$BENCH" "$@" -p "$BENCH_PORT" --tls "$TLS" -d "$DOMAIN" \
	    -T "$TIMEOUT" --key-cache "$DIR/keys" --csv "$DIR/runs.csv" \
	    $SRC_OPT || status=1
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
	if [ "$ACCOUNTS" = sql ]; then
		create_xmppd_users_sql
		echo "== created $USERS accounts in $(since "$t") s" \
		    "(written into the database, $ITER SCRAM iterations)"
	else
		create_xmppd_users
		echo "== created $USERS accounts in $(since "$t") s" \
		    "(xmppctl adduser, 8 in parallel, $ITER SCRAM iterations)"
	fi
fi
echo "== server: $SRV_VERSION, pid $SRV_PID, VmRSS $(rss_kib "$SRV_PID") KiB"

# Warm-up: one login per account, so the client derives each SCRAM key
# once (PBKDF2, kept in the key cache) and the server's database pages are
# in memory before anything is measured.  Reported, not tabled.
echo "-- warm-up: $WARMUP logins (client PBKDF2 included)"
bench login -n "$WARMUP" -c "$CONC" --users "$USERS" --label "$SERVER-warmup"

if [ "$ROSTER" != only ] && [ "$SM" != only ] && [ "$PEP" != only ] &&
    [ "$MUC" != only ]; then
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

# Idle sessions with stream management (XEP-0198) on every session: each
# run on a fresh server (memory the allocator kept from an earlier run
# would be reused and hide the cost), first at the normal ramp, then at a
# fast one; each session enables SM with resumption after binding, sends
# initial presence, counts the stanzas it receives and answers <r/>.
# Before each, every account logs in once (SM_WARMUP), as before the
# plain idle run: a server that has not seen the users yet grows its
# storage cache during the ramp.  Their baseline: a plain idle run the
# same way (the one above also follows the login runs).
sm_idle() {
	start_xmppd
	what="with stream management"
	[ "$3" = "" ] && what="without stream management (baseline)"
	echo "-- idle sessions $what: $SM_IDLE sessions, $1 logging in at" \
	    "a time (fresh server, pid $SRV_PID, $SM_WARMUP warm-up logins)"
	bench login -n "$SM_WARMUP" -c "$CONC" --users "$USERS" \
	    --label "$SERVER-warmup"
	# shellcheck disable=SC2086 # $3 is --sm or nothing
	bench idle $3 -n "$SM_IDLE" -c "$1" --users "$USERS" \
	    --settle "$SM_SETTLE" -t "$SM_SETTLE" --pid "$SRV_PID" \
	    --label "$2"
	stop_server
}
if [ "$SM" != 0 ]; then
	sm_idle "$CONC" "$SERVER-fresh" ""
	sm_idle "$CONC" "$SERVER-sm" --sm
	sm_idle "$SM_FAST" "$SERVER-sm-fast" --sm
fi

# Reconnects that resume (XEP-0198 §5), on a fresh server: $RESUME
# sessions log in with SM and resumption, then each drops its TCP
# connection and comes back with TLS session resumption, SASL and
# <resume/>; again with full TLS handshakes on reconnect; then bare TLS
# handshakes on the direct TLS port, the baseline.  Server CPU per
# reconnect, per login and per handshake.
if [ "$RESUME" -gt 0 ]; then
	start_xmppd
	echo "-- resume: $RESUME sessions log in with stream management," \
	    "drop their connection and resume, $CONC at a time (fresh" \
	    "server, pid $SRV_PID, $RESUME warm-up logins)"
	bench login -n "$RESUME" -c "$CONC" --users "$USERS" \
	    --label "$SERVER-warmup"
	# The server's CPU per operation moves by 10% or more from run to
	# run on a shared machine: ROUNDS rounds, medians below the table.
	round=1
	while [ $round -le "$ROUNDS" ]; do
		echo "-- round $round of $ROUNDS: resume"
		bench resume -n "$RESUME" -c "$CONC" --users "$USERS" \
		    --pid "$SRV_PID" --label "$SERVER" >"$DIR/resume.out"
		cat "$DIR/resume.out"
		echo "-- the same, reconnecting with a full TLS handshake" \
		    "(what TLS session resumption saves)"
		bench resume --no-tls-resume -n "$RESUME" -c "$CONC" \
		    --users "$USERS" --pid "$SRV_PID" --label "$SERVER-fulltls"
		echo "-- bare TLS handshakes on the direct TLS port (the" \
		    "baseline)"
		$CLI_PIN "$BENCH" login --handshake-only -n "$RESUME" \
		    -c "$CONC" -p "$PORT_TLS" --tls direct -d "$DOMAIN" \
		    -T "$TIMEOUT" --pid "$SRV_PID" --label "$SERVER" \
		    --csv "$DIR/runs.csv" || status=1
		round=$((round + 1))
	done
	stop_server
fi

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
	# Client state indication on the same rosters: user0 and its
	# contacts online, each contact changes status CSI_CHANGES times;
	# what reaches user0 while active, then while inactive (README.md).
	if [ "$CSI" != 0 ]; then
		for state in active inactive; do
			opt=
			[ $state = inactive ] && opt=--inactive
			echo "-- csi: observer user0 $state, its $R_ITEMS" \
			    "contacts change status $CSI_CHANGES times each"
			# shellcheck disable=SC2086
			$CLI_PIN "$BENCH" csi $opt -n "$CSI_CHANGES" \
			    --users "$R_USERS" --roster-items "$R_ITEMS" \
			    -p "$BENCH_PORT" --tls "$TLS" -d "$DOMAIN" \
			    -T "$TIMEOUT" --key-cache "$DIR/keys" \
			    --pid "$SRV_PID" --label "$SERVER" \
			    --csv "$DIR/csi.csv" >"$DIR/csi-$state.out" ||
			    status=1
			cat "$DIR/csi-$state.out"
			kill -0 "$SRV_PID" 2>/dev/null ||
			    die "the server died during the run"
		done
	fi
	stop_server
fi

# PEP (XEP-0163), on a fresh server with PEP_USERS rosters of PEP_ITEMS
# mutual contacts (README.md, "PEP"): every user online with caps that
# want urn:xmpp:tmp:bench, each publishes PEP_PUBLISHES items; then each
# user's PEP_NODES nodes get one item (pep-login --seed) and logins with
# caps that want them (their contacts' last items: PEP_ITEMS *
# PEP_NODES) are measured against logins with caps that want none,
# PEP_ROUNDS rounds, each variant warmed up once first (so the server
# has verified both caps).
if [ "$PEP" != 0 ]; then
	t=$(now)
	seed_xmppd_rosters "$PEP_USERS" "$PEP_ITEMS" clear
	start_xmppd
	echo "== pep: seeded $PEP_USERS rosters of $PEP_ITEMS mutual" \
	    "subscriptions and restarted the server in $(since "$t") s;" \
	    "pid $SRV_PID"
	echo "-- pep warm-up: $PEP_USERS logins"
	bench login -n "$PEP_USERS" -c "$CONC" --users "$PEP_USERS" \
	    --label "$SERVER-warmup"
	echo "-- pep: $PEP_USERS users online, $PEP_PUBLISHES items of" \
	    "$PEP_ITEM_BYTES bytes each to $PEP_ITEMS contacts and their own" \
	    "resource"
	$CLI_PIN "$BENCH" pep -n "$PEP_PUBLISHES" --users "$PEP_USERS" \
	    --roster-items "$PEP_ITEMS" --item-bytes "$PEP_ITEM_BYTES" \
	    -c "$PEP_CONC" -p "$BENCH_PORT" --tls "$TLS" -d "$DOMAIN" \
	    -T "$TIMEOUT" --key-cache "$DIR/keys" --pid "$SRV_PID" \
	    --label "$SERVER" --csv "$DIR/pep.csv" | tee "$DIR/pep.out" ||
	    status=1
	kill -0 "$SRV_PID" 2>/dev/null || die "the server died during the run"
	echo "-- pep: $PEP_NODES nodes with one item for each of the" \
	    "$PEP_USERS users"
	bench pep-login --seed -n "$PEP_USERS" -c "$PEP_CONC" \
	    --users "$PEP_USERS" --nodes "$PEP_NODES" --label "$SERVER-warmup"
	bench pep-login -n "$PEP_USERS" -c "$PEP_CONC" --users "$PEP_USERS" \
	    --roster-items "$PEP_ITEMS" --nodes "$PEP_NODES" \
	    --label "$SERVER-warmup"
	bench pep-login --notify -n "$PEP_USERS" -c "$PEP_CONC" \
	    --users "$PEP_USERS" --roster-items "$PEP_ITEMS" \
	    --nodes "$PEP_NODES" --label "$SERVER-warmup"
	round=1
	while [ $round -le "$PEP_ROUNDS" ]; do
		echo "-- round $round of $PEP_ROUNDS: $PEP_LOGINS logins with" \
		    "caps that want no node, then with +notify for the" \
		    "$PEP_NODES nodes ($PEP_ITEMS * $PEP_NODES last items each)"
		bench pep-login -n "$PEP_LOGINS" -c "$PEP_CONC" \
		    --users "$PEP_USERS" --roster-items "$PEP_ITEMS" \
		    --nodes "$PEP_NODES" --pid "$SRV_PID" --label "$SERVER"
		bench pep-login --notify -n "$PEP_LOGINS" -c "$PEP_CONC" \
		    --users "$PEP_USERS" --roster-items "$PEP_ITEMS" \
		    --nodes "$PEP_NODES" --pid "$SRV_PID" --label "$SERVER"
		round=$((round + 1))
	done
	stop_server
fi

# Group chat (XEP-0045; README.md, "MUC"), a fresh server per room size:
# the room filled (memory per occupant), BENCH_MUC_SENDERS occupants send
# (copies per second, server CPU per copy), then BENCH_MUC_JOINS
# sessions join with BENCH_MUC_HISTORY history messages one after the
# other and leave, BENCH_MUC_JOIN_ROUNDS times (server CPU per join).
if [ "$MUC" != 0 ]; then
	for n in $MUC_SIZES; do
		if [ "$SERVER" = prosody ]; then
			start_prosody
		else
			start_xmppd
		fi
		m=$((MUC_COPIES / n))
		[ "$m" -lt 20 ] && m=20
		s=$MUC_SENDERS
		[ "$s" -gt "$n" ] && s=$n
		echo "-- muc: a room of $n occupants at $MUC_DOMAIN, $s senders," \
		    "window $MUC_WINDOW, $m messages ($((m * n)) copies);" \
		    "$MUC_JOINS x $MUC_JOIN_ROUNDS joins with $MUC_HISTORY" \
		    "history messages (fresh server, pid $SRV_PID)"
		$CLI_PIN "$BENCH" muc -n "$m" --occupants "$n" --senders "$s" \
		    --window "$MUC_WINDOW" --joins "$MUC_JOINS" \
		    --join-rounds "$MUC_JOIN_ROUNDS" --history "$MUC_HISTORY" \
		    --muc-domain "$MUC_DOMAIN" -p "$BENCH_PORT" --tls "$TLS" \
		    -d "$DOMAIN" -T "$MUC_TIMEOUT" --key-cache "$DIR/keys" \
		    --pid "$SRV_PID" --label "$SERVER" --csv "$DIR/muc.csv"
		rc=$?
		kill -0 "$SRV_PID" 2>/dev/null ||
		    die "the server died during the run"
		# Every session leaves the room as it closes: n * n
		# presence broadcasts the server works through afterwards.
		wait_quiet "$SRV_PID" 3000
		stop_server
		if [ $rc -eq 3 ]; then
			sed -i '$d' "$DIR/muc.csv" # not a measurement
			echo "bench: $SERVER has no MUC service at $MUC_DOMAIN:" \
			    "muc runs skipped" >&2
			[ "$MUC" = auto ] || status=1
			break
		fi
		[ $rc -eq 0 ] || status=1
	done
fi

echo
echo "== results: $SERVER, $TLS, $pinning"
tls_resumed=$(sed -n 's/.* tls_resumed=\([^ ]*\) .*/\1/p' \
    "$DIR/resume.out" 2>/dev/null)
awk -F, -v closed="${rss_closed:-?}" -v settle="$SETTLE" \
    -v smsettle="$SM_SETTLE" -v items="$R_ITEMS" -v rusers="$R_USERS" \
    -v resumed="${tls_resumed:-?}" -v pnodes="$PEP_NODES" \
    -v pitems="$PEP_ITEMS" '
function cpu(v) { return v < 0 ? "-" : sprintf("%.2f", v) }
function median(v, n,    i, j, t) {
	if (n == 0)
		return ""
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && v[j - 1] > v[j]; j--) {
			t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
		}
	return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function spread(v, n) {
	return n > 1 ? sprintf(" [%.3f-%.3f, %d runs]", v[1], v[n], n) : ""
}
function memory(i, what, s) {
	printf "\n%s: %d sessions, server VmRSS %d KiB before the ramp, " \
	    "%d KiB after %s s idle%s\n", what, mn[i], mbefore[i],
	    mafter[i], s, (mode[i] == "idle" && !fresh[i] ? " (" closed \
	    " KiB once closed)" : "")
	met = (mper[i] >= 0 && mper[i] <= 20 * 1024) ? "met" : "NOT MET"
	printf "  per session: %d bytes = %.1f KiB (target <= 20 KiB: %s);" \
	    " ramp %.0f logins/s at c=%d\n", mper[i], mper[i] / 1024, met,
	    mrate[i], mc[i]
}
NR == 1 { next }
$2 ~ /-warmup$/ { next }
{
	if ($3 == "idle" && $2 ~ /-fresh$/)
		what = "idle ramp, fresh (c=" $6 ")"
	else if ($3 == "idle")
		what = "idle ramp (c=" $6 ")"
	else if ($3 == "idle-sm")
		what = "idle ramp, SM (c=" $6 ")"
	else if ($3 == "roster")
		what = "roster login (c=" $6 ")"
	else if ($3 == "pep-login")
		what = "pep login, no +notify (c=" $6 ")"
	else if ($3 == "pep-login-notify")
		what = "  with +notify (c=" $6 ")"
	else if ($3 == "resume-login" && $2 ~ /-fulltls$/)
		next
	else if ($3 == "resume-login")
		what = "login + SM (c=" $6 ")"
	else if ($3 == "resume" && $2 ~ /-fulltls$/)
		what = "  reconnect, full TLS (c=" $6 ")"
	else if ($3 == "resume")
		what = "  reconnect, resumed (c=" $6 ")"
	else if ($3 == "handshake")
		what = "  bare TLS handshake (c=" $6 ")"
	else if ($2 ~ /-base$/)
		what = "  plain, same users (c=" $6 ")"
	else if ($6 == 1)
		what = "sequential login"
	else
		what = "parallel login (c=" $6 ")"
	printf "%-28s %11s %7s %9s %9s %8s %8s %8s %8s\n", what, $7 "/" $5,
	    $8, $9, $10, $14, $11, $12, cpu($20 == "" ? -1 : $20)
	if ($3 == "idle" || $3 == "idle-sm") {
		nm++; mode[nm] = $3; fresh[nm] = $2 ~ /-fresh$/
		mn[nm] = $7; mbefore[nm] = $15
		mafter[nm] = $16; mper[nm] = $17; mrate[nm] = $10; mc[nm] = $6
	}
	if ($3 == "resume-login" && $20 >= 0)
		login_v[++nlogin] = $20
	if ($3 == "resume" && $2 ~ /-fulltls$/ && $20 >= 0)
		fulltls_v[++nfulltls] = $20
	else if ($3 == "resume" && $20 >= 0)
		resume_v[++nresume] = $20
	if ($3 == "handshake" && $20 >= 0)
		hs_v[++nhs] = $20
	if ($3 == "pep-login" && $20 >= 0)
		pl_v[++npl] = $20
	if ($3 == "pep-login-notify" && $20 >= 0)
		pn_v[++npn] = $20
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
	for (i = 1; i <= nm; i++) {
		if (mode[i] == "idle" && fresh[i]) {
			memory(i, "idle memory without stream management, " \
			    "fresh server (baseline of the runs with)",
			    smsettle)
			base = mper[i]
			basec = mc[i]
		} else if (mode[i] == "idle")
			memory(i, "idle memory (authenticated TLS sessions)",
			    settle)
		else
			memory(i, "idle memory with stream management (XEP-0198" \
			    " enabled, resumable)", smsettle)
	}
	if (base != "")
		for (i = 1; i <= nm; i++)
			if (mode[i] == "idle-sm")
				printf "  with stream management (c=%d): %+.2f " \
				    "KiB per session against that baseline " \
				    "(c=%d)\n", mc[i], (mper[i] - base) / 1024,
				    basec
	for (i = 1; i <= nm; i++)
		if (mode[i] == "idle-sm" && mc[i] > fastc) {
			fastc = mc[i]; fast = mrate[i]
		}
	if (fastc)
		printf "  fast ramp (c=%d): %.0f logins/s (>= 1,000 asked: %s)\n",
		    fastc, fast, (fast >= 1000 ? "reached" : "NOT reached")
	# Ratios within each round (its runs follow each other on one
	# server), then their medians: steadier than ratios of medians
	# when the load of the machine changes between rounds.
	for (i = 1; i <= nresume; i++) {
		if (i <= nlogin && login_v[i] > 0)
			r_login[++nr_login] = resume_v[i] / login_v[i]
		if (i <= nhs && hs_v[i] > 0)
			r_hs[++nr_hs] = resume_v[i] / hs_v[i]
		if (i <= nfulltls && (f = fulltls_v[i]) > 0)
			r_save[++nr_save] = 100 - 100 * resume_v[i] / f
	}
	resume_ms = median(resume_v, nresume)
	login_ms = median(login_v, nlogin)
	hs_ms = median(hs_v, nhs)
	fulltls_ms = median(fulltls_v, nfulltls)
	if (resume_ms != "") {
		printf "\nresume (medians of %d rounds, [range]): server CPU " \
		    "per reconnect (TLS resumption, SASL, <resume/>) %.3f " \
		    "ms%s; TLS sessions resumed %s (last round)\n", nresume,
		    resume_ms, spread(resume_v, nresume), resumed
		if (nr_login)
			printf "  per full login (TLS, SASL, bind, <enable/>, " \
			    "presence) %.3f ms%s: reconnect / login %.2f%s\n",
			    login_ms, spread(login_v, nlogin),
			    median(r_login, nr_login), spread(r_login, nr_login)
		if (nr_hs)
			printf "  per bare TLS handshake (full, direct TLS) " \
			    "%.3f ms%s: reconnect / handshake %.2f%s\n", hs_ms,
			    spread(hs_v, nhs), median(r_hs, nr_hs),
			    spread(r_hs, nr_hs)
		if (nr_save)
			printf "  per reconnect with a full TLS handshake " \
			    "%.3f ms%s: TLS resumption saves %.0f%% of it " \
			    "(%%:%s)\n", fulltls_ms, spread(fulltls_v, nfulltls),
			    median(r_save, nr_save), spread(r_save, nr_save)
	}
	# PEP logins: the ratio within each round, then the median.
	for (i = 1; i <= npn && i <= npl; i++)
		if (pl_v[i] > 0)
			r_pep[++nr_pep] = pn_v[i] / pl_v[i]
	if (nr_pep) {
		r = median(r_pep, nr_pep)
		printf "\npep logins (medians of %d rounds, [range]): server " \
		    "CPU per login %.3f ms%s with caps that want no node, " \
		    "%.3f ms%s with +notify for %d nodes of %d contacts: " \
		    "%.2fx%s (target <= 1.3x: %s)\n", nr_pep,
		    median(pl_v, npl), spread(pl_v, npl), median(pn_v, npn),
		    spread(pn_v, npn), pnodes, pitems, r,
		    spread(r_pep, nr_pep), (r <= 1.3 ? "met" : "NOT MET")
	}
	if (nroster) {
		printf "\nroster logins: %d accounts, %d mutual contacts " \
		    "each, the odd half online\n", rusers, items
		for (i = 1; i <= nroster; i++)
			print roster[i]
	}
	printf "\ncpu_ms: server CPU time (user + system) per login " \
	    "(reconnect, handshake)\n"
}' "$DIR/runs.csv"
if [ -s "$DIR/presence.out" ]; then
	sed -n 's/.* delivered=\([^ ]*\) .* rate=\([^ ]*\) .*p50=\([^ ]*\) p99=\([^ ]*\) .*server_cpu=[^(]*(\([^)]*\)).*/\
presence: \1 stanzas delivered, \2, latency p50 \3, p99 \4, server CPU \5/p' \
	    "$DIR/presence.out"
fi

# PEP: notifications per second and server CPU per notification.
if [ -s "$DIR/pep.csv" ]; then
	awk -F, 'NR > 1 {
	printf "\npep (XEP-0163): %d users of %d contacts, %d items of %d " \
	    "bytes each: %d of %d notifications in %.2f s, %.0f/s, latency " \
	    "p50 %.2f ms, p99 %.2f ms; server CPU %.2f us per notification " \
	    "(target <= 3 us: %s)\n", $6, $7, $8, $9, $12, $13, $14, $15,
	    $16, $17, $19, ($19 >= 0 && $19 <= 3 ? "met" : "NOT MET")
}' "$DIR/pep.csv"
	PEP_CSV=${BENCH_PEP_CSV:-$BUILD/bench/pep.csv}
	mkdir -p "$(dirname "$PEP_CSV")"
	if [ ! -s "$PEP_CSV" ]; then
		cat "$DIR/pep.csv" >"$PEP_CSV"
	else
		tail -n +2 "$DIR/pep.csv" >>"$PEP_CSV"
	fi
	echo "(pep rows appended to $PEP_CSV)"
fi

# MUC: copies per second, CPU per copy and per join, memory per occupant.
if [ "$(wc -l <"$DIR/muc.csv" 2>/dev/null || echo 0)" -gt 1 ]; then
	awk -F, '
NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
function v(name) { return $col[name] }
function target(x, max) { return x < 0 ? "-" : (x <= max ? "met" : "NOT MET") }
{
	n = v("occupants")
	printf "\nmuc (XEP-0045), a room of %d: %d of %d copies in %.2f s, " \
	    "%.0f/s, latency p50 %.1f ms, p99 %.1f ms; server CPU %.3f us " \
	    "per copy%s\n", n, v("delivered"), v("expected"), v("elapsed_s"),
	    v("copies_per_s"), v("p50_ms"), v("p99_ms"),
	    v("server_cpu_us_per_copy"),
	    (n >= 100 ? " (target <= 2 us: " \
	    target(v("server_cpu_us_per_copy"), 2) ")" : "")
	printf "  join with %d history messages (%.1f received): server " \
	    "CPU %.3f ms per join%s, latency p50 %.2f ms; leave %.3f ms\n",
	    v("history"), v("history_per_join"), v("join_cpu_ms"),
	    (n == 100 ? " (target <= 1 ms: " target(v("join_cpu_ms"), 1) \
	    ")" : ""), v("join_p50_ms"), v("leave_cpu_ms")
	printf "  memory: VmRSS %d -> %d KiB for %d occupants: %d bytes per " \
	    "occupant%s; filling %.2f s, %.3f ms of server CPU per join\n",
	    v("server_rss_before_kib"), v("server_rss_after_kib"), n,
	    v("bytes_per_occupant"), (n >= 1000 ? " (target <= 512: " \
	    target(v("bytes_per_occupant"), 512) ")" : " (the target is " \
	    "read at 1,000)"), v("fill_s"), v("fill_cpu_ms_per_join")
}' "$DIR/muc.csv"
	MUC_CSV=${BENCH_MUC_CSV:-$BUILD/bench/muc.csv}
	mkdir -p "$(dirname "$MUC_CSV")"
	if [ ! -s "$MUC_CSV" ]; then
		cat "$DIR/muc.csv" >"$MUC_CSV"
	else
		tail -n +2 "$DIR/muc.csv" >>"$MUC_CSV"
	fi
	echo "(muc rows appended to $MUC_CSV)"
fi

# CSI: what the server sent the observer, active and inactive.
if [ -s "$DIR/csi.csv" ]; then
	awk -F, -v changes="$CSI_CHANGES" '
NR == 1 { next }
{
	n++; st[n] = $6; pres[n] = $10; latest[n] = $11; rec[n] = $12
	tls[n] = $13; plain[n] = $14; segs[n] = $15; contacts = $7
	total = $8
	if ($6 == "active") a = n
	if ($6 == "inactive") b = n
}
function pct(x, y) { return y > 0 ? 100 * (1 - x / y) : 0 }
END {
	printf "\ncsi (XEP-0352): user0 with %d contacts online, %d status " \
	    "changes (%d each); what the server sent user0\n", contacts, total,
	    changes
	printf "%-10s %9s %7s %12s %13s %10s %12s\n", "observer", "presence",
	    "latest", "tls_records", "tcp_segments", "tls_bytes",
	    "plain_bytes"
	for (i = 1; i <= n; i++)
		printf "%-10s %9d %7s %12d %13d %10d %12d\n", st[i], pres[i],
		    latest[i] "/" contacts, rec[i], segs[i], tls[i], plain[i]
	if (a && b) {
		rb = pct(tls[b], tls[a]); rw = pct(rec[b], rec[a])
		printf "inactive: %.1f%% fewer bytes (target >= 90%%: %s), " \
		    "%.1f%% fewer writes (TLS records; target >= 95%%: %s)\n",
		    rb, (rb >= 90 ? "met" : "NOT MET"), rw,
		    (rw >= 95 ? "met" : "NOT MET")
	}
}' "$DIR/csi.csv"
	CSI_CSV=${BENCH_CSI_CSV:-$BUILD/bench/csi.csv}
	mkdir -p "$(dirname "$CSI_CSV")"
	if [ ! -s "$CSI_CSV" ]; then
		cat "$DIR/csi.csv" >"$CSI_CSV"
	else
		tail -n +2 "$DIR/csi.csv" >>"$CSI_CSV"
	fi
	echo "(csi rows appended to $CSI_CSV)"
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

# WebSocket against TCP+TLS (tests/bench/ws.sh, issue 17; ~3 min at the
# defaults): its own daemon, directory and ports; BENCH_WS=0 skips it.
if [ "$WS" != 0 ]; then
	echo
	if [ "$SERVER" = xmppd ]; then
		BUILD=$BUILD sh "$(dirname "$0")/ws.sh" || status=1
	elif [ "$WS" = 1 ]; then
		echo "bench: BENCH_WS=1: the WebSocket scenario is xmppd's" >&2
		status=1
	else
		echo "== WebSocket scenario skipped: it runs against xmppd only"
	fi
fi

# Phones' reconnects over SASL2 (tests/bench/reconnect.py, ~1 min): a
# full handshake, a resumed one, the legacy and the SASL2 + Bind 2 login,
# and a reconnect with TLS resumption, FAST and XEP-0198 resumption
# inline, one at a time, server CPU from /proc; BENCH_RECONNECT=0 skips
# it.
if [ "${BENCH_RECONNECT:-1}" != 0 ] && [ "$SERVER" = xmppd ]; then
	echo
	echo "== reconnects (SASL2, Bind 2, FAST; tests/bench/reconnect.py)"
	case $BUILD in /*) b=$BUILD ;; *) b=$PWD/$BUILD ;; esac
	XMPPD_BIN=$b/xmppd XMPPCTL_BIN=$b/xmppctl \
	    /usr/bin/python3 "$(dirname "$0")/reconnect.py" || status=1
fi
# XEP-0363 upload over HTTPS (tests/bench/upload.sh, ~1.5 min): N
# parallel PUTs and GETs with MiB/s and server CPU per MiB, and paced chat
# p99 alone and while uploads run; BENCH_UPLOAD=0 skips it.
if [ "$UPLOAD" != 0 ] && [ "$SERVER" = xmppd ]; then
	echo
	BUILD=$BUILD sh "$HERE/upload.sh" || status=1
fi
# Server-to-server (tests/bench/s2s.py, ~2 min): BENCH_S2S=0 skips it.
if [ "$S2S" != 0 ] && [ "$SERVER" = xmppd ]; then
	echo
	s2s_bench || status=1
fi
[ $status -eq 0 ] || echo "bench: some runs had failures, see above" >&2
exit $status
