#!/bin/sh
# The WebSocket benchmark (RFC 7395; issue 17): the chat mode over TCP+TLS
# and over WebSocket on the same daemon in the same run, server CPU per
# delivered message of each and their ratio; then the idle mode over each
# transport, every idle run on a fresh daemon, bytes of server memory per
# idle session and the difference.  Loopback only, a private xmppd with
# http and https listeners and `websocket on`; builds nothing (`make
# bench` builds first).  See tests/bench/README.md, "WebSocket".
#
# Knobs (environment):
#   BENCH_WS_TRANSPORTS  WebSocket transports measured: "wss ws" (default),
#                        wss or ws; the TCP baseline is always run
#   BENCH_WS_PAIRS       pairs of online users messaging each other (50)
#   BENCH_WS_MESSAGES    messages of each chat run (100000)
#   BENCH_WS_WINDOW      undelivered messages per sender (16)
#   BENCH_WS_BODY        bytes of padding in each body (100)
#   BENCH_WS_ROUNDS      chat rounds, transports interleaved; medians (3)
#   BENCH_WS_IDLE        sessions of each idle run, 0: none (5000)
#   BENCH_WS_CONCURRENCY logins in flight in the idle ramps (100)
#   BENCH_WS_PATH        the WebSocket resource (/xmpp-websocket)
#   BENCH_TLS            the TCP baseline: starttls (default) or direct
#   BENCH_SETTLE, BENCH_TIMEOUT, BENCH_ITERATIONS as in run.sh
#   BENCH_WS_CSV         results file (BUILD/bench/ws.csv)

set -u

BUILD=${BUILD:-build}
TRANSPORTS=${BENCH_WS_TRANSPORTS:-wss ws}
PAIRS=${BENCH_WS_PAIRS:-50}
MESSAGES=${BENCH_WS_MESSAGES:-100000}
WINDOW=${BENCH_WS_WINDOW:-16}
BODY=${BENCH_WS_BODY:-100}
ROUNDS=${BENCH_WS_ROUNDS:-3}
IDLE=${BENCH_WS_IDLE:-5000}
CONC=${BENCH_WS_CONCURRENCY:-100}
WS_PATH=${BENCH_WS_PATH:-/xmpp-websocket}
TLS=${BENCH_TLS:-starttls}
SETTLE=${BENCH_SETTLE:-5}
TIMEOUT=${BENCH_TIMEOUT:-300}
ITER=${BENCH_ITERATIONS:-4096}
CSV=${BENCH_WS_CSV:-$BUILD/bench/ws.csv}

BENCH=$BUILD/tests/bench/xmppbench
DOMAIN=localhost
status=0

die() {
	echo "ws bench: $*" >&2
	exit 1
}
. "$(dirname "$0")/lib.sh"

for f in "$BUILD/xmppd" "$BUILD/xmppctl" "$BENCH"; do
	[ -x "$f" ] || die "$f not built (make BUILD=$BUILD all $BENCH)"
done
command -v openssl >/dev/null || die "openssl (the command) is needed"
case $TLS in
starttls | direct) ;;
*) die "BENCH_TLS must be starttls or direct" ;;
esac
for t in $TRANSPORTS; do
	case $t in
	ws | wss) ;;
	*) die "BENCH_WS_TRANSPORTS: ws and/or wss" ;;
	esac
done
[ "$ROUNDS" -ge 1 ] 2>/dev/null || die "BENCH_WS_ROUNDS must be at least 1"
USERS=$((2 * PAIRS))
[ "$IDLE" -gt "$USERS" ] && USERS=$IDLE
need=$((IDLE + CONC + 1024))
[ $need -lt 65536 ] && need=65536
ulimit -n "$need" 2>/dev/null || ulimit -n "$(ulimit -H -n)" 2>/dev/null
nofile=$(ulimit -n)
if [ "$nofile" != unlimited ] && [ "$nofile" -lt $((IDLE + 256)) ]; then
	IDLE=$((nofile - 256))
	echo "ws bench: open files limited to $nofile: idle runs of $IDLE" >&2
fi

work_dir xmppbench-ws

pin_cores

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -nodes -days 30 -subj "/CN=$DOMAIN" -addext "subjectAltName=DNS:$DOMAIN" \
    -keyout "$DIR/key.pem" -out "$DIR/cert.pem" 2>/dev/null ||
    die "cannot create a certificate"
PORT=$(pick_port)
PORT_TLS=$(pick_port "$PORT")
PORT_HTTP=$(pick_port "$PORT_TLS")
PORT_HTTPS=$(pick_port "$PORT_HTTP")

# Every limit off (lib.sh), and the web listeners with WebSocket on;
# sessions-per-user for idle runs larger than the accounts.
start_xmppd() {
	xmppd_launch "$DIR" "listen http $PORT_HTTP address 127.0.0.1
listen https $PORT_HTTPS address 127.0.0.1
websocket on" "    sessions-per-user 1000"
}

stop_server() {
	if ! term_wait "$SRV_PID" 100; then
		echo "ws bench: xmppd did not exit within 10 s of SIGTERM" >&2
		status=1
	fi
	wait "$SRV_PID" 2>/dev/null
	SRV_PID=
}

# user0..user(USERS-1) with password pwI; one xmppctl per account, 8 at
# a time (the control socket's limit: those turned away are retried).
create_users() {
	seq 0 $((USERS - 1)) | xargs -P 8 -n 1 sh -c \
	    'err=$(printf "pw%s\n" "$2" | "$0" -s "$1" adduser \
	    "user$2@'"$DOMAIN"'" --password-stdin 2>&1 >/dev/null) ||
	    echo "$2"' \
	    "$BUILD/xmppctl" "$DIR/xmppd.sock" >"$DIR/adduser-retry"
	while read -r i; do
		printf "pw%s\n" "$i" | "$BUILD/xmppctl" -s "$DIR/xmppd.sock" \
		    adduser "user$i@$DOMAIN" --password-stdin >/dev/null ||
		    die "cannot create user$i"
	done <"$DIR/adduser-retry"
}

# xb MODE TRANSPORT ARGS...: one xmppbench run over TRANSPORT (tcp: the
# c2s port with BENCH_TLS), its summary to stdout, a row to a CSV.
xb() {
	xb_mode=$1
	xb_tr=$2
	shift 2
	case $xb_tr in
	tcp) if [ "$TLS" = direct ]; then xb_port=$PORT_TLS; else
		xb_port=$PORT; fi
		xb_opt="--tls $TLS" ;;
	ws) xb_port=$PORT_HTTP; xb_opt="--transport ws --ws-path $WS_PATH" ;;
	wss) xb_port=$PORT_HTTPS
		xb_opt="--transport wss --ws-path $WS_PATH" ;;
	esac
	# shellcheck disable=SC2086 # xb_opt is several words
	$CLI_PIN "$BENCH" "$xb_mode" "$@" -p "$xb_port" $xb_opt -d "$DOMAIN" \
	    -T "$TIMEOUT" --key-cache "$DIR/keys" --label "xmppd-$xb_tr" \
	    --csv "$DIR/$xb_mode.csv" || status=1
	kill -0 "$SRV_PID" 2>/dev/null || die "the server died during the run"
}

# The warm-up of a fresh daemon (not measured): every account logs in
# once over TCP, so the client has its SCRAM keys and the server its
# database pages whichever transport is measured next.
warm_up() {
	xb login tcp -n "$USERS" -c 20 --users "$USERS" >/dev/null ||
	    die "warm-up logins failed"
}

echo "== ws bench: xmppd, TCP ($TLS) against $TRANSPORTS, loopback; $pinning"
start_xmppd
t=$(now)
create_users
echo "== created $USERS accounts in $(since "$t") s; pid $SRV_PID"
warm_up

# Chat: the same daemon, the transports interleaved round by round so a
# drift of the machine falls on each alike.
r=1
while [ $r -le "$ROUNDS" ]; do
	for tr in tcp $TRANSPORTS; do
		echo "-- chat over $tr, round $r: $PAIRS pairs, window $WINDOW," \
		    "$MESSAGES messages"
		xb chat "$tr" -n "$MESSAGES" --pairs "$PAIRS" \
		    --window "$WINDOW" --body "$BODY" --pid "$SRV_PID"
	done
	r=$((r + 1))
done
stop_server

# Idle: a fresh daemon per transport (memory the allocator kept from an
# earlier run would be reused and hide the cost), warmed up alike.
if [ "$IDLE" -gt 0 ]; then
	for tr in tcp $TRANSPORTS; do
		start_xmppd
		warm_up
		echo "-- idle over $tr: $IDLE sessions, settle $SETTLE s"
		xb idle "$tr" -n "$IDLE" -c "$CONC" --users "$USERS" \
		    --settle "$SETTLE" -t 0 --pid "$SRV_PID"
		stop_server
	done
fi

[ -s "$DIR/idle.csv" ] || : >"$DIR/idle.csv"

# The table: medians of the chat rounds (server CPU per delivered
# message, µs), bytes per idle session; WebSocket against TCP.
echo
echo "== WebSocket against TCP+TLS ($TLS); issue 17: CPU ratio <= 1.3," \
    "idle difference <= 4096 B"
awk -F, -v transports="tcp $TRANSPORTS" '
function median(tr,    n, i, j, t, v) {
	n = cnt[tr]
	for (i = 1; i <= n; i++)
		v[i] = cpu[tr, i]
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && v[j - 1] > v[j]; j--) {
			t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
		}
	return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
FNR == 1 { for (i = 1; i <= NF; i++) col[FILENAME, $i] = i; next }
FILENAME ~ /chat\.csv$/ {
	tr = substr($col[FILENAME, "label"], 7)
	cpu[tr, ++cnt[tr]] = $col[FILENAME, "server_cpu_ms_per_1000"]
	rate[tr] += $col[FILENAME, "messages_per_s"]
	bad[tr] += $col[FILENAME, "n"] - $col[FILENAME, "delivered"]
	next
}
FILENAME ~ /idle\.csv$/ {
	tr = substr($col[FILENAME, "label"], 7)
	idle[tr] = $col[FILENAME, "bytes_per_session"]
	ok[tr] = $col[FILENAME, "ok"] "/" $col[FILENAME, "n"]
}
END {
	n = split(transports, t, " ")
	base = cnt["tcp"] ? median("tcp") : 0
	printf "%-5s %14s %8s %12s %10s %14s %10s\n", "", "us/msg (med)", \
	    "ratio", "msg/s (mean)", "undeliv.", "idle B/session", "diff B"
	for (i = 1; i <= n; i++) {
		tr = t[i]
		m = cnt[tr] ? median(tr) : -1
		c1 = c2 = c3 = c4 = c5 = c6 = "-"
		if (m >= 0)
			c1 = sprintf("%.2f", m)
		if (m >= 0 && base > 0)
			c2 = sprintf("%.3f", m / base)
		if (cnt[tr]) {
			c3 = sprintf("%.0f", rate[tr] / cnt[tr])
			c4 = bad[tr]
		}
		if (tr in idle)
			c5 = idle[tr] " (" ok[tr] ")"
		if ((tr in idle) && ("tcp" in idle))
			c6 = idle[tr] - idle["tcp"]
		printf "%-5s %14s %8s %12s %10s %14s %10s\n", tr, \
		    c1, c2, c3, c4, c5, c6
	}
}' "$DIR/chat.csv" "$DIR/idle.csv" || status=1

mkdir -p "$(dirname "$CSV")"
for f in chat idle; do
	[ -s "$DIR/$f.csv" ] || continue
	out=${CSV%.csv}-$f.csv
	if [ ! -s "$out" ]; then
		cat "$DIR/$f.csv" >"$out"
	else
		tail -n +2 "$DIR/$f.csv" >>"$out"
	fi
	echo "(CSV rows appended to $out)"
done
[ $status -eq 0 ] || echo "ws bench: some runs had failures, see above" >&2
exit $status
