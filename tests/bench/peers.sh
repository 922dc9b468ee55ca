#!/bin/sh
# make bench-peers: the same scenarios against xmppd, Prosody and ejabberd
# (Debian's packages), each a private instance on free loopback ports with
# an equivalent configuration (TLS, the same self-signed certificate, SCRAM
# accounts, rosters, offline storage, carbons; the message archive only in
# the archive scenario; every rate limit off), the same accounts written
# straight into each server's storage, each scenario run BENCH_RUNS times
# per server (servers interleaved), then one table: the median with min and
# max of the runs, per metric, and xmppd against the better peer.  Builds
# nothing (`make bench-peers` builds first).  See tests/bench/README.md,
# "Side by side".
#
# Knobs (environment; defaults in brackets):
#   BENCH_PEERS            servers, in order [xmppd prosody ejabberd]
#   BENCH_RUNS             runs of each scenario per server [3]
#   BENCH_SCENARIOS        [login idle chat presence archive muc]
#   BENCH_TLS              starttls, direct or none [starttls]
#   BENCH_MECH             auto, SCRAM-SHA-256, SCRAM-SHA-1 or PLAIN [auto]
#   BENCH_ITERATIONS       SCRAM iterations of the accounts [4096]
#   BENCH_SEQ_LOGINS       logins, sequential run [1000]
#   BENCH_LOGINS           logins, parallel run [3000]
#   BENCH_CONCURRENCY      logins in flight, parallel run and idle ramp [100]
#   BENCH_WARMUP           untabled logins before the login runs [500]
#   BENCH_IDLE             idle sessions [10000]
#   BENCH_USERS            accounts user0.. [the largest count above, at most
#                          10000: more idle sessions share accounts]
#   BENCH_SETTLE           s idle before the server's RSS is read [5]
#   BENCH_CHAT_PAIRS       pairs of chatting users [50]
#   BENCH_CHAT_MESSAGES    messages in the chat run [50000]
#   BENCH_CHAT_WINDOW      undelivered messages per sender [16]
#   BENCH_CHAT_BODY        bytes of padding per body [100]
#   BENCH_PRESENCE_USERS   users online with seeded rosters [200]
#   BENCH_PRESENCE_ITEMS   contacts per roster, even [100]
#   BENCH_PRESENCE_CHANGES status changes in the presence run [2000]
#   BENCH_PRESENCE_WINDOW  changes in flight per user [1]
#   BENCH_ARCHIVE_MESSAGES messages in the chat run with the archive on [20000]
#   BENCH_MAM_ROWS         messages in the queried archive [1000000]
#   BENCH_MAM_QUERIES      timed queries per kind of page [20]
#   BENCH_MAM_PAGE         messages per page [50]
#   BENCH_MUC_SIZES        occupants of the room of each muc run
#                          [10 100 1000]
#   BENCH_MUC_COPIES       groupchat copies to deliver in each muc run:
#                          messages = copies / occupants [200000]
#   BENCH_MUC_SENDERS      occupants sending in the muc runs [10]
#   BENCH_MUC_WINDOW       messages in flight per sender [4]
#   BENCH_MUC_JOINS        sessions joining the room with history, one at
#                          a time, per round [10]
#   BENCH_MUC_JOIN_ROUNDS  rounds of those joins (then they leave) [10]
#   BENCH_MUC_HISTORY      maxstanzas of those joins [20]
#   BENCH_MUC_DOMAIN       the MUC service of all three [conference.localhost]
#   BENCH_MUC_TIMEOUT      time limit of each muc run, s [900: Prosody
#                          takes about 3 minutes to fill a room of 1,000]
#   BENCH_TIMEOUT          time limit of each load generator run, s [300]
#   BENCH_PEERS_CSV        the table as CSV [BUILD/bench/peers.csv]
#   BENCH_INSTALL          1: as root, apt-get install missing peers [1]
#   BENCH_KEEP             1: keep the work directory (configurations, logs)
#   BENCH_PEERS_DIR        where the servers' storage lives [/dev/shm if it
#                          has 4 GB free, else TMPDIR or /tmp]

set -u

BUILD=${BUILD:-build}
PEERS=${BENCH_PEERS:-xmppd prosody ejabberd}
RUNS=${BENCH_RUNS:-3}
SCENARIOS=${BENCH_SCENARIOS:-login idle chat presence archive muc}
TLS=${BENCH_TLS:-starttls}
MECH=${BENCH_MECH:-auto}
ITER=${BENCH_ITERATIONS:-4096}
SEQ=${BENCH_SEQ_LOGINS:-1000}
LOGINS=${BENCH_LOGINS:-3000}
CONC=${BENCH_CONCURRENCY:-100}
WARMUP=${BENCH_WARMUP:-500}
IDLE=${BENCH_IDLE:-10000}
SETTLE=${BENCH_SETTLE:-5}
PAIRS=${BENCH_CHAT_PAIRS:-50}
MESSAGES=${BENCH_CHAT_MESSAGES:-50000}
WINDOW=${BENCH_CHAT_WINDOW:-16}
BODY=${BENCH_CHAT_BODY:-100}
P_USERS=${BENCH_PRESENCE_USERS:-200}
P_ITEMS=${BENCH_PRESENCE_ITEMS:-100}
P_CHANGES=${BENCH_PRESENCE_CHANGES:-2000}
P_WINDOW=${BENCH_PRESENCE_WINDOW:-1}
A_MESSAGES=${BENCH_ARCHIVE_MESSAGES:-20000}
MAM_ROWS=${BENCH_MAM_ROWS:-1000000}
MAM_QUERIES=${BENCH_MAM_QUERIES:-20}
MAM_PAGE=${BENCH_MAM_PAGE:-50}
MUC_SIZES=${BENCH_MUC_SIZES:-10 100 1000}
MUC_COPIES=${BENCH_MUC_COPIES:-200000}
MUC_SENDERS=${BENCH_MUC_SENDERS:-10}
MUC_WINDOW=${BENCH_MUC_WINDOW:-4}
MUC_JOINS=${BENCH_MUC_JOINS:-10}
MUC_JOIN_ROUNDS=${BENCH_MUC_JOIN_ROUNDS:-10}
MUC_HISTORY=${BENCH_MUC_HISTORY:-20}
MUC_TIMEOUT=${BENCH_MUC_TIMEOUT:-900}
TIMEOUT=${BENCH_TIMEOUT:-300}
OUT=${BENCH_PEERS_CSV:-$BUILD/bench/peers.csv}
INSTALL=${BENCH_INSTALL:-1}

HERE=$(cd "$(dirname "$0")" && pwd)
SEED="python3 $HERE/peers_seed.py"
BENCH=$BUILD/tests/bench/xmppbench
DOMAIN=localhost
MUC_DOMAIN=${BENCH_MUC_DOMAIN:-conference.$DOMAIN}
MAM_USER=mamuser
MAM_PASSWORD=pwmam
EJABBERD_SCHEMA=/usr/share/ejabberd/sql/lite.sql
status=0
T_START=$(date +%s)

die() {
	echo "bench-peers: $*" >&2
	exit 1
}
warn() {
	echo "bench-peers: $*" >&2
	status=1
}
. "$(dirname "$0")/lib.sh"

has() { # has WORD LIST
	case " $2 " in *" $1 "*) return 0 ;; esac
	return 1
}
max() {
	m=0
	for v in "$@"; do [ "$v" -gt "$m" ] && m=$v; done
	echo "$m"
}

# ---- checks and installation ----

for s in $PEERS; do
	case $s in xmppd | prosody | ejabberd) ;;
	*) die "BENCH_PEERS: unknown server $s (xmppd, prosody, ejabberd)" ;;
	esac
done
for s in $SCENARIOS; do
	case $s in login | idle | chat | presence | archive | muc) ;;
	*) die "BENCH_SCENARIOS: unknown scenario $s" ;;
	esac
done
case $TLS in starttls | direct | none) ;;
*) die "BENCH_TLS must be starttls, direct or none" ;;
esac
case $MECH in
auto | SCRAM-SHA-256 | PLAIN) HASH=sha256 ;;
SCRAM-SHA-1) HASH=sha1 ;;
*) die "BENCH_MECH must be auto, SCRAM-SHA-256, SCRAM-SHA-1 or PLAIN" ;;
esac
[ $((P_ITEMS % 2)) -eq 0 ] && [ "$P_ITEMS" -lt "$P_USERS" ] ||
    die "BENCH_PRESENCE_ITEMS must be even and below BENCH_PRESENCE_USERS"
[ "$RUNS" -ge 1 ] 2>/dev/null || die "BENCH_RUNS must be at least 1"
MUC_MAX=0
if has muc "$SCENARIOS"; then
	MUC_MAX=$(max $MUC_SIZES)
	for n in $MUC_SIZES; do
		[ "$n" -ge 1 ] 2>/dev/null ||
		    die "BENCH_MUC_SIZES: room sizes of at least 1"
	done
fi

# Debian packages of the peers (and what their storage needs); as root,
# installed when missing.  A system service the installation starts is
# stopped and disabled: only the private instances below run.
install_peers() {
	pkgs=
	if has prosody "$PEERS"; then
		command -v prosody >/dev/null || pkgs="$pkgs prosody"
		[ -f /usr/lib/x86_64-linux-gnu/lua/5.4/dbi/sqlite3.so ] ||
		    dpkg -s lua-dbi-sqlite3 >/dev/null 2>&1 ||
		    pkgs="$pkgs lua-dbi-sqlite3"
	fi
	if has ejabberd "$PEERS"; then
		command -v ejabberdctl >/dev/null || pkgs="$pkgs ejabberd"
		dpkg -s erlang-p1-sqlite3 >/dev/null 2>&1 ||
		    pkgs="$pkgs erlang-p1-sqlite3"
	fi
	command -v python3 >/dev/null || pkgs="$pkgs python3"
	command -v openssl >/dev/null || pkgs="$pkgs openssl"
	[ -z "$pkgs" ] && return 0
	if [ "$(id -u)" != 0 ] || [ "$INSTALL" != 1 ]; then
		die "missing:$pkgs (as root: apt-get install -y$pkgs)"
	fi
	echo "== installing:$pkgs"
	export DEBIAN_FRONTEND=noninteractive
	{ apt-get install -y -q $pkgs || { apt-get update -q &&
	    apt-get install -y -q $pkgs; }; } >"${TMPDIR:-/tmp}/bench-peers-apt.log" 2>&1 ||
	    die "apt-get install$pkgs failed (${TMPDIR:-/tmp}/bench-peers-apt.log)"
	for svc in prosody ejabberd; do
		has "$svc" "$pkgs" || continue
		if command -v systemctl >/dev/null &&
		    systemctl is-active --quiet "$svc" 2>/dev/null; then
			systemctl stop "$svc"
		elif service "$svc" status >/dev/null 2>&1; then
			service "$svc" stop >/dev/null 2>&1
		fi
		if command -v systemctl >/dev/null; then
			systemctl disable "$svc" >/dev/null 2>&1
		fi
		command -v update-rc.d >/dev/null &&
		    update-rc.d "$svc" disable >/dev/null 2>&1
		echo "== stopped and disabled the system $svc service" \
		    "(the bench runs its own instance)"
	done
	return 0
}
install_peers
if has xmppd "$PEERS"; then
	[ -x "$BUILD/xmppd" ] && [ -x "$BUILD/xmppctl" ] ||
	    die "$BUILD/xmppd missing: run make bench-peers"
fi
[ -x "$BENCH" ] || die "$BENCH missing: run make bench-peers"
has prosody "$PEERS" && { command -v prosody >/dev/null ||
    die "prosody is not installed"; }
has ejabberd "$PEERS" && { [ -f "$EJABBERD_SCHEMA" ] ||
    die "ejabberd (with $EJABBERD_SCHEMA) is not installed"; }

# The servers' storage on tmpfs when there is room: a sync to disk costs
# no CPU but would bound the archive rates by the disk's sync latency
# (Prosody commits every archived message on its own).
WORK=${BENCH_PEERS_DIR:-}
if [ -z "$WORK" ]; then
	WORK=${TMPDIR:-/tmp}
	shm=$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }')
	[ -w /dev/shm ] && [ "${shm:-0}" -gt 4000000 ] && WORK=/dev/shm
fi
DIR=$(mktemp -d "$WORK/bench-peers.XXXXXX") || die "mktemp failed"
RES=$DIR/results
mkdir -p "$RES"
echo "label,rows,expected" >"$RES/archived.csv"
echo "label,page,median_ms,min_ms,max_ms,failed" >"$RES/mam.csv"
SRV_PID=

cleanup() {
	if [ -n "$SRV_PID" ] && kill -0 "$SRV_PID" 2>/dev/null; then
		term_wait "$SRV_PID" 300
	fi
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		echo "bench-peers: work directory kept: $DIR" >&2
	else
		rm -rf "$DIR"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Accounts: user0.. for logins, idle, chat; pres0.. with rosters for the
# presence scenario; mamuser owns the seeded archive.
USERS=${BENCH_USERS:-}
if [ -z "$USERS" ]; then
	USERS=$(max "$SEQ" "$LOGINS" "$WARMUP" $((2 * PAIRS)) "$IDLE")
	[ "$USERS" -gt 10000 ] && USERS=10000
	[ "$USERS" -lt $((MUC_MAX + MUC_JOINS)) ] &&
	    USERS=$((MUC_MAX + MUC_JOINS))
fi
[ "$USERS" -ge $((2 * PAIRS)) ] || die "BENCH_USERS is below 2 x pairs"
[ "$USERS" -ge $((MUC_MAX + MUC_JOINS)) ] ||
    die "BENCH_USERS is below the largest room plus BENCH_MUC_JOINS"

need=$((IDLE + CONC + 1024))
[ $need -lt 65536 ] && need=65536
ulimit -n "$need" 2>/dev/null || ulimit -n "$(ulimit -H -n)" 2>/dev/null
nofile=$(ulimit -n)
if [ "$nofile" != unlimited ] && [ "$nofile" -lt $((IDLE + CONC + 256)) ]; then
	echo "bench-peers: open files limited to $nofile: idle sessions" \
	    "capped at $((nofile - CONC - 256)) instead of $IDLE" >&2
	IDLE=$((nofile - CONC - 256))
fi

pin_cores

echo "== bench-peers: $PEERS; $RUNS run(s) of: $SCENARIOS"
echo "== $TLS, mechanism $MECH, loopback; $pinning; open files $nofile"
echo "== work directory $DIR ($(df -P "$DIR" | awk 'NR == 2 { print $1 }'))"

# One self-signed EC P-256 certificate for all three.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -nodes -days 30 -subj "/CN=$DOMAIN" -addext "subjectAltName=DNS:$DOMAIN" \
    -keyout "$DIR/key.pem" -out "$DIR/cert.pem" 2>/dev/null ||
    die "cannot create a certificate"

# The credentials, derived once (PBKDF2 for SCRAM-SHA-1 and -256) and kept
# in BUILD/bench between runs; every server gets the same salts and keys,
# and the load generator the matching key cache.
CREDS=$BUILD/bench/peers-creds-$USERS-$P_USERS-$ITER.tsv
mkdir -p "$BUILD/bench"
if [ ! -s "$CREDS" ]; then
	t=$(now)
	$SEED creds "$CREDS" "$ITER" "user:$USERS" "pres:$P_USERS" \
	    "$MAM_USER:1" || die "cannot derive the credentials"
	echo "== derived the keys of $((USERS + P_USERS + 1)) accounts in" \
	    "$(since "$t") s ($CREDS)"
fi
$SEED keycache "$CREDS" "$HASH" "$DIR/keys" || die "cannot write key cache"

# ---- per-server configuration ----

# xmppd: the configuration run.sh uses, every limit that would throttle
# the load generator off.  $1 instance directory, $2 archive on|off.
xmppd_start() { # INST MAM
	spu=
	[ "$USERS" -lt "$IDLE" ] && spu="    sessions-per-user 1000"
	st=required
	[ "$TLS" = none ] && st=optional
	xmppd_launch "$1" "archive $([ "$2" = 1 ] && echo on || echo off)" \
	    "$spu" "$st"
}

# Prosody 0.12: internal storage for accounts and rosters (its default),
# the archive in SQLite (mod_storage_sql), Nagle off as xmppd, mod_limits
# not loaded (no rate limits), no archive quota, archive kept forever.
prosody_conf() { # INST MAM
	mam=
	storage='storage = "internal"'
	if [ "$2" = 1 ]; then
		mam='"mam";'
		storage="storage = { archive = \"sql\" }
sql = { driver = \"SQLite3\"; database = \"$1/prosody.sqlite\" }
archive_expires_after = \"never\"
default_archive_policy = true
storage_archive_item_limit = 1000000000"
	fi
	req=true
	[ "$TLS" = none ] && req=false
	ph=SHA-256
	[ "$HASH" = sha1 ] && ph=SHA-1
	# Group chat (the muc scenario; always there, as in ejabberd's):
	# anyone may create rooms, which lock until configured (the
	# default); Prosody 0.12's own MUC has no occupant limit and no
	# message rate limit (those are the community modules
	# mod_muc_limits and mod_muc_max_occupants, not installed), history
	# 20 messages (its default); up to 1000 rooms in memory.
	muc="Component \"$MUC_DOMAIN\" \"muc\"
    restrict_room_creation = false
    muc_room_default_history_length = 20
    muc_room_cache_size = 1000"
	mkdir -p "$1/certs"
	cp "$DIR/cert.pem" "$1/certs/$DOMAIN.crt"
	cp "$DIR/key.pem" "$1/certs/$DOMAIN.key"
	cat >"$1/prosody.cfg.lua" <<EOF
run_as_root = true
pidfile = "$1/prosody.pid"
data_path = "$1/data"
log = { warn = "$1/server.log" }
certificates = "$1/certs"
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "ping";
    "presence"; "posix"; "offline"; "carbons"; "private"; "vcard";
    "lastactivity"; "blocklist"; "time"; "version"; $mam }
modules_disabled = { "s2s"; }
interfaces = { "127.0.0.1" }
c2s_interfaces = { "127.0.0.1" }
c2s_ports = { $PORT }
c2s_direct_tls_ports = { $PORT_TLS }
s2s_ports = {}
http_ports = {}
https_ports = {}
c2s_require_encryption = $req
allow_registration = false
authentication = "internal_hashed"
password_hash = "$ph"
default_iteration_count = $ITER
$storage
network_settings = { read_timeout = 3600; nagle = false; tcp_backlog = 1024 }
VirtualHost "$DOMAIN"
    ssl = { certificate = "$DIR/cert.pem"; key = "$DIR/key.pem"; }
$muc
EOF
}

prosody_start() { # INST MAM
	prosody_conf "$1" "$2"
	$SRV_PIN prosody -F --config "$1/prosody.cfg.lua" >"$1/server.out" 2>&1 &
	SRV_PID=$!
	wait_listening prosody "$1" 100
}

# ejabberd 23.01: SQL storage in SQLite (auth, rosters, offline, archive),
# SCRAM accounts, every shaper off and the c2s queue limit raised.  Run
# as one Erlang VM without distribution (no node name, cookie or epmd):
# it is stopped with SIGTERM and needs no ejabberdctl.
ejabberd_conf() { # INST MAM
	mam=
	[ "$2" = 1 ] && mam="  mod_mam:
    default: always
    db_type: sql"
	st="starttls: true
    starttls_required: true"
	[ "$TLS" = none ] && st="starttls: false"
	sh=sha256
	[ "$HASH" = sha1 ] && sh=sha
	cat "$DIR/cert.pem" "$DIR/key.pem" >"$1/ejabberd.pem"
	cat >"$1/ejabberd.yml" <<EOF
hosts:
  - $DOMAIN
loglevel: warning
log_rotate_count: 0
hide_sensitive_log_data: true
certfiles:
  - "$1/ejabberd.pem"
listen:
  -
    port: $PORT
    ip: "127.0.0.1"
    module: ejabberd_c2s
    max_stanza_size: 262144
    shaper: none
    access: c2s
    backlog: 1024
    $st
  -
    port: $PORT_TLS
    ip: "127.0.0.1"
    module: ejabberd_c2s
    max_stanza_size: 262144
    shaper: none
    access: c2s
    backlog: 1024
    tls: true
auth_method: sql
auth_password_format: scram
auth_scram_hash: $sh
default_db: sql
sql_type: sqlite
sql_database: "$1/ejabberd.db"
max_fsm_queue: 1000000
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  c2s:
    allow: all
shaper_rules:
  max_user_sessions: 100000
  max_user_offline_messages: 5000
  c2s_shaper: none
  s2s_shaper: none
modules:
  mod_roster: {}
  mod_disco: {}
  mod_ping: {}
  mod_offline:
    access_max_user_messages: max_user_offline_messages
  mod_carboncopy: {}
  mod_private: {}
  mod_vcard: {}
  mod_last: {}
  mod_privacy: {}
  mod_blocking: {}
  mod_time: {}
  mod_version:
    show_os: false
  mod_muc:
    hosts:
      - "$MUC_DOMAIN"
    access_create: all
    max_users: 100000
    max_users_presence: 100000
    max_user_conferences: 100000
    history_size: 20
    min_message_interval: 0
    min_presence_interval: 0
    room_shaper: none
    user_message_shaper: none
    user_presence_shaper: none
    default_room_options:
      max_users: 100000
      persistent: false
      mam: false
$mam
EOF
}

ejabberd_start() { # INST MAM
	ejabberd_conf "$1" "$2"
	mkdir -p "$1/spool" "$1/log"
	(
		cd "$1/spool" || exit 1
		export EJABBERD_CONFIG_PATH="$1/ejabberd.yml"
		export EJABBERD_LOG_PATH="$1/log/ejabberd.log"
		export ERL_CRASH_DUMP="$1/log/erl_crash.dump"
		export ERL_LIBS=/usr/lib/x86_64-linux-gnu
		export ERL_MAX_PORTS=1000000 ERL_MAX_ETS_TABLES=1400
		exec $SRV_PIN erl -noinput -noshell +K true +P 1000000 \
		    -mnesia dir "\"$1/spool\"" -s ejabberd \
		    >"$1/server.out" 2>&1
	) &
	SRV_PID=$!
	wait_listening ejabberd "$1" 600
}

wait_listening() { # NAME INST TENTHS
	i=0
	until port_listening "$PORT" && port_listening "$PORT_TLS"; do
		kill -0 "$SRV_PID" 2>/dev/null || {
			cat "$2/server.out" "$2/server.log" \
			    "$2/log/ejabberd.log" 2>/dev/null | tail -n 30 >&2
			die "$1 exited at start-up"
		}
		[ $i -ge "$3" ] && die "$1 did not listen within $(($3 / 10)) s"
		sleep 0.1
		i=$((i + 1))
	done
}

# Stop with SIGTERM and see it go (30 s; then it fails the bench).
stop_server() {
	[ -n "$SRV_PID" ] || return 0
	term_wait "$SRV_PID" 300 ||
	    warn "$CUR did not exit within 30 s of SIGTERM"
	wait "$SRV_PID" 2>/dev/null
	SRV_PID=
}

# ---- templates: each server's storage with the accounts (and, for the
# archive scenario, the big archive), written while it is stopped ----

template() { # SERVER
	T=$DIR/tpl-$1
	mkdir -p "$T"
	PORT=$(pick_port)
	PORT_TLS=$(pick_port "$PORT")
	CUR=$1
	case $1 in
	xmppd)
		# The daemon creates its schema; then it is stopped.
		xmppd_start "$T" 0
		stop_server
		$SEED xmppd "$T/xmppd.db" "$CREDS" pres "$P_USERS" "$P_ITEMS" ||
		    die "cannot seed xmppd"
		;;
	prosody)
		$SEED prosody "$T/data" "$CREDS" "$HASH" pres "$P_USERS" \
		    "$P_ITEMS" || die "cannot seed prosody"
		;;
	ejabberd)
		$SEED ejabberd "$T/ejabberd.db" "$EJABBERD_SCHEMA" "$CREDS" \
		    "$HASH" pres "$P_USERS" "$P_ITEMS" ||
		    die "cannot seed ejabberd"
		;;
	esac
	has archive "$SCENARIOS" || return 0
	A=$DIR/tpl-$1-mam
	cp -a "$T" "$A"
	if [ "$1" = prosody ]; then
		db=$A/prosody.sqlite
	else
		db=$A/$1.db
	fi
	MIDDLE=$($SEED archive "$1" "$db" "$MAM_USER" "$MAM_ROWS") ||
	    die "cannot seed the $1 archive"
	echo "$MIDDLE" >"$A/middle"
	rm -f "$A/server.log" "$A/server.out"
}

# A fresh instance from a template; sets INST, PORT, PORT_TLS, BENCH_PORT.
NINST=0
start_instance() { # SERVER MAM
	NINST=$((NINST + 1))
	INST=$DIR/run-$NINST-$1
	src=$DIR/tpl-$1
	[ "$2" = 1 ] && src=$DIR/tpl-$1-mam
	cp -a "$src" "$INST"
	rm -rf "$INST/spool" "$INST/log" "$INST/xmppd.sock"
	cp "$DIR/keys" "$INST/keys"
	PORT=$(pick_port)
	PORT_TLS=$(pick_port "$PORT")
	BENCH_PORT=$PORT
	[ "$TLS" = direct ] && BENCH_PORT=$PORT_TLS
	CUR=$1
	"${1}_start" "$INST" "$2"
	# Ready is when a login succeeds: ejabberd listens before its SQL
	# pool is up and turns the first logins away meanwhile.  (No key
	# cache here: the run would save it with user0 alone.)
	i=0
	until $CLI_PIN "$BENCH" login -n 1 --users 1 -p "$BENCH_PORT" \
	    --tls "$TLS" --mech "$MECH" -d "$DOMAIN" -T 10 >/dev/null 2>&1; do
		kill -0 "$SRV_PID" 2>/dev/null || die "$1 exited at start-up"
		i=$((i + 1))
		[ $i -ge 30 ] && die "$1 accepts no login within 30 s"
		sleep 1
	done
}

# After a scenario: the instance's storage is not needed any more.
end_instance() {
	stop_server
	[ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$INST"
}

# One load generator run; its summary line to stdout and the log.
bench() {
	$CLI_PIN "$BENCH" "$@" -p "$BENCH_PORT" --tls "$TLS" --mech "$MECH" \
	    -d "$DOMAIN" -T "$TIMEOUT" --key-cache "$INST/keys" \
	    >"$INST/bench.out" 2>&1
	rc=$?
	grep -v '^idle: holding' "$INST/bench.out" | sed 's/^/   /'
	if [ $rc -eq 3 ] && [ "$1" = muc ]; then
		: # no MUC service: run_muc says so, not a failure
	elif [ $rc -ne 0 ]; then
		warn "$CUR: xmppbench $1 failed:"
		grep -E 'warn|error' "$INST/bench.out" | head -n 3 >&2
	fi
	kill -0 "$SRV_PID" 2>/dev/null || {
		warn "$CUR died during xmppbench $1"
		SRV_PID=
		return 1
	}
	return $rc
}

# ---- scenarios ----

run_login() { # SERVER RUN
	start_instance "$1" 0
	bench login -n "$WARMUP" -c "$CONC" --users "$USERS" --no-close-wait \
	    --label "$1-warmup" >/dev/null
	mech=$(sed -n 's/.* mech=\([^ ]*\).*/\1/p' "$INST/bench.out")
	proto=$(sed -n 's/.* tls=[a-z]*,\([^ ]*\).*/\1/p' "$INST/bench.out")
	echo "-- $1 run $2: logins (${proto:-no TLS}, $mech)"
	grep -q "^$1 " "$RES/proto" 2>/dev/null ||
	    echo "$1 ${proto:-no TLS}, $mech" >>"$RES/proto"
	# Full logins (issue 7): bind, then roster get and initial presence.
	bench login --full -n "$SEQ" -c 1 --users "$USERS" --pid "$SRV_PID" \
	    --no-close-wait --label "$1/$2/seq" --csv "$RES/logins.csv"
	bench login --full -n "$LOGINS" -c "$CONC" --users "$USERS" \
	    --first "$SEQ" --pid "$SRV_PID" --no-close-wait \
	    --label "$1/$2/par" --csv "$RES/logins.csv"
	# The baseline: the same server's cost of a bare TLS handshake
	# (direct TLS port, close_notify right after, no XMPP).
	$CLI_PIN "$BENCH" login --handshake-only -n "$LOGINS" -c "$CONC" \
	    -p "$PORT_TLS" --tls direct -d "$DOMAIN" -T "$TIMEOUT" \
	    --pid "$SRV_PID" --label "$1/$2/hs" --csv "$RES/logins.csv" \
	    2>&1 | sed 's/^/   /'
	end_instance
}

run_idle() {
	start_instance "$1" 0
	bench login -n 200 -c 20 --users "$USERS" --label "$1-warmup" \
	    >/dev/null
	echo "-- $1 run $2: $IDLE idle sessions"
	bench idle -n "$IDLE" -c "$CONC" --users "$USERS" --settle "$SETTLE" \
	    -t "$SETTLE" --pid "$SRV_PID" --label "$1/$2/idle" \
	    --csv "$RES/logins.csv"
	end_instance
}

run_chat() {
	start_instance "$1" 0
	echo "-- $1 run $2: chat, $PAIRS pairs, window $WINDOW"
	bench chat -n "$MESSAGES" --pairs "$PAIRS" --window "$WINDOW" \
	    --body "$BODY" --pid "$SRV_PID" --label "$1/$2/chat" \
	    --csv "$RES/chat.csv"
	# Latency below saturation: paced at half the rate just reached,
	# for about 5 s.
	half=$(sed -n 's/.* rate=\([0-9]*\).*/\1/p' "$INST/bench.out")
	half=$(( ${half:-0} / 2 ))
	if [ "$half" -gt 0 ] && [ -n "$SRV_PID" ]; then
		n=$((half * 5))
		[ $n -gt "$MESSAGES" ] && n=$MESSAGES
		[ $n -lt 1000 ] && n=1000
		echo "-- $1 run $2: chat paced at $half messages/s"
		bench chat -n "$n" --rate "$half" --pairs "$PAIRS" \
		    --window "$WINDOW" --body "$BODY" --pid "$SRV_PID" \
		    --label "$1/$2/chathalf" --csv "$RES/chat.csv"
	fi
	end_instance
}

run_presence() {
	start_instance "$1" 0
	echo "-- $1 run $2: presence, $P_USERS users with $P_ITEMS contacts"
	bench presence -u pres -n "$P_CHANGES" --users "$P_USERS" \
	    --roster-items "$P_ITEMS" --window "$P_WINDOW" --pid "$SRV_PID" \
	    --label "$1/$2/presence" --csv "$RES/presence.csv"
	end_instance
}

run_archive() {
	start_instance "$1" 1
	echo "-- $1 run $2: chat with the archive on, then MAM queries" \
	    "($MAM_ROWS archived messages)"
	bench chat -n "$A_MESSAGES" --pairs "$PAIRS" --window "$WINDOW" \
	    --body "$BODY" --pid "$SRV_PID" --label "$1/$2/archive" \
	    --csv "$RES/chat.csv"
	delivered=$(sed -n 's/.* delivered=\([0-9]*\).*/\1/p' "$INST/bench.out")
	m=$MECH
	[ "$m" = auto ] && m=$(sed -n 's/.* mech=\([^ ]*\).*/\1/p' \
	    "$INST/bench.out")
	[ -n "$SRV_PID" ] && {
		$CLI_PIN $SEED mam "$BENCH_PORT" "$TLS" "$m" "$MAM_USER" \
		    "$MAM_PASSWORD" "$MAM_QUERIES" "$MAM_PAGE" \
		    "$(cat "$INST/middle")" "$DOMAIN" "$RES/mam.csv" \
		    "$1/$2/mam" || warn "$1: MAM queries failed"
	}
	stop_server
	db=$INST/$1.db
	[ "$1" = prosody ] && db=$INST/prosody.sqlite
	rows=$($SEED count "$1" "$db" "$MAM_USER") || rows=0
	expected=$((2 * ${delivered:-0}))
	echo "   archived: $rows rows for $delivered delivered messages" \
	    "(expected $expected: one copy per party)"
	[ "$rows" = "$expected" ] ||
	    echo "   ($1 archived $rows of $expected)" >&2
	echo "$1/$2/archive,$rows,$expected" >>"$RES/archived.csv"
	end_instance
}

# Group chat (XEP-0045), one fresh instance per room size: the room
# filled, BENCH_MUC_SENDERS of its occupants send messages (copies per
# second, server CPU per copy), then BENCH_MUC_JOINS sessions join it
# with BENCH_MUC_HISTORY history messages one after the other and leave,
# BENCH_MUC_JOIN_ROUNDS times (server CPU per join); memory per
# occupant from the VmRSS before and after the filling.  A server
# without a MUC service at $MUC_DOMAIN (xmppbench exits with 3) is
# reported and skipped.
run_muc() {
	for n in $MUC_SIZES; do
		start_instance "$1" 0
		m=$((MUC_COPIES / n))
		[ "$m" -lt 20 ] && m=20
		s=$MUC_SENDERS
		[ "$s" -gt "$n" ] && s=$n
		echo "-- $1 run $2: muc, a room of $n occupants, $s senders," \
		    "window $MUC_WINDOW, $m messages ($((m * n)) copies)"
		t=$TIMEOUT
		TIMEOUT=$MUC_TIMEOUT
		bench muc -n "$m" --occupants "$n" --senders "$s" \
		    --window "$MUC_WINDOW" --body "$BODY" --joins "$MUC_JOINS" \
		    --join-rounds "$MUC_JOIN_ROUNDS" --history "$MUC_HISTORY" \
		    --muc-domain "$MUC_DOMAIN" --pid "$SRV_PID" \
		    --label "$1/$2/muc$n" --csv "$RES/muc.csv"
		rc=$?
		TIMEOUT=$t
		# Every session ending leaves the room: n * n unavailable
		# presence broadcasts the server works through after the
		# run.  Wait for it (at most 5 min) before stopping it.
		[ -n "$SRV_PID" ] && wait_quiet "$SRV_PID" 3000
		end_instance
		if [ $rc -eq 3 ]; then
			echo "   $1 has no MUC service at $MUC_DOMAIN: muc skipped"
			break
		fi
	done
}

# ---- the run ----

for s in $PEERS; do
	t=$(now)
	template "$s"
	case $s in
	xmppd) v=$("$BUILD/xmppd" -V 2>&1 | head -n 1) ;;
	prosody) v="prosody $(dpkg-query -W -f '${Version}' prosody 2>/dev/null)" ;;
	ejabberd) v="ejabberd $(dpkg-query -W -f '${Version}' ejabberd 2>/dev/null)" ;;
	esac
	echo "== $s ($v): storage seeded with $((USERS + P_USERS + 1))" \
	    "accounts$(has archive "$SCENARIOS" && echo " and $MAM_ROWS archived messages")" \
	    "in $(since "$t") s"
done

run=1
while [ $run -le "$RUNS" ]; do
	for sc in $SCENARIOS; do
		for s in $PEERS; do
			"run_$sc" "$s" "$run"
		done
	done
	run=$((run + 1))
done

echo
echo "== results: median [min-max] of $RUNS run(s); $TLS; $pinning"
mkdir -p "$(dirname "$OUT")"
$SEED table "$RES" "$PEERS" "$OUT" "$RUNS" ||
    warn "cannot table the results"
if [ -s "$RES/proto" ]; then
	echo
	sed 's/^\([^ ]*\) /TLS and SASL mechanism, \1: /' "$RES/proto"
fi
for f in logins chat presence mam archived muc; do
	[ -s "$RES/$f.csv" ] && cp "$RES/$f.csv" "$(dirname "$OUT")/peers-$f.csv"
done
cat <<EOF

Server CPU is user + system time from /proc/PID/stat over the measured
window (muc: the threads' schedstat run time, to the nanosecond); "CPU
use" near 100% on a side means that side saturated.  Chat
and archive: $PAIRS pairs, window $WINDOW, $MESSAGES / $A_MESSAGES messages;
presence: $P_USERS users x $P_ITEMS contacts, $P_CHANGES status changes;
idle: $IDLE sessions; muc: rooms of $MUC_SIZES occupants, $MUC_SENDERS
senders, window $MUC_WINDOW, $MUC_COPIES copies each; joins with
$MUC_HISTORY history messages, $MUC_JOINS x $MUC_JOIN_ROUNDS.  Table as CSV: $OUT (raw runs beside it).
bench-peers took $(( $(date +%s) - T_START )) s.
EOF
[ $status -eq 0 ] || echo "bench-peers: some runs failed, see above" >&2
exit $status
