#!/bin/sh
# The chat and archive benchmark (XEP-0313 message archive): messages per
# second routed between online users, each archived twice (sender's and
# recipient's archive), verified by counting the stored rows; then the time
# of a 50-message MAM page query on an archive of 1,000,000 messages,
# seeded straight into the stopped daemon's database.  Loopback only, a
# private xmppd; builds nothing (`make bench` builds first).  See
# tests/bench/README.md, "Chat and archive".
#
# Knobs (environment):
#   BENCH_CHAT_PAIRS     pairs of online users messaging each other (50)
#   BENCH_CHAT_MESSAGES  messages sent in the chat run (100000)
#   BENCH_CHAT_WINDOW    undelivered messages per sender (16)
#   BENCH_CHAT_BODY      bytes of padding in each body (100)
#   BENCH_MAM_ROWS       messages in the queried archive (1000000)
#   BENCH_MAM_QUERIES    queries timed per kind of page (50)
#   BENCH_MAM_PAGE       messages per page (50)
#   BENCH_TLS, BENCH_TIMEOUT, BENCH_ITERATIONS as in run.sh
#   BENCH_ARCHIVE_CSV    chat results file (BUILD/bench/chat.csv)

set -u

BUILD=${BUILD:-build}
PAIRS=${BENCH_CHAT_PAIRS:-50}
MESSAGES=${BENCH_CHAT_MESSAGES:-100000}
WINDOW=${BENCH_CHAT_WINDOW:-16}
BODY=${BENCH_CHAT_BODY:-100}
ROWS=${BENCH_MAM_ROWS:-1000000}
QUERIES=${BENCH_MAM_QUERIES:-50}
PAGE=${BENCH_MAM_PAGE:-50}
TLS=${BENCH_TLS:-starttls}
TIMEOUT=${BENCH_TIMEOUT:-300}
ITER=${BENCH_ITERATIONS:-4096}
CSV=${BENCH_ARCHIVE_CSV:-$BUILD/bench/chat.csv}

BENCH=$BUILD/tests/bench/xmppbench
HERE=$(cd "$(dirname "$0")" && pwd)
DOMAIN=localhost
MAM_USER=mamuser
MAM_PASSWORD=pwmam
status=0

die() {
	echo "archive bench: $*" >&2
	exit 1
}
. "$(dirname "$0")/lib.sh"

for f in "$BUILD/xmppd" "$BUILD/xmppctl" "$BENCH"; do
	[ -x "$f" ] || die "$f not built (make BUILD=$BUILD all $BENCH)"
done
command -v openssl >/dev/null || die "openssl (the command) is needed"
command -v python3 >/dev/null || die "python3 is needed"

work_dir xmppbench-archive

pin_cores

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -nodes -days 30 -subj "/CN=$DOMAIN" -addext "subjectAltName=DNS:$DOMAIN" \
    -keyout "$DIR/key.pem" -out "$DIR/cert.pem" 2>/dev/null ||
    die "cannot create a certificate"
PORT=$(pick_port)
PORT_TLS=$(pick_port "$PORT")
BENCH_PORT=$PORT
[ "$TLS" = direct ] && BENCH_PORT=$PORT_TLS

# The default rate limits (50 stanzas and 64 KiB a second per session)
# would throttle the chat run, and the pre-auth limit the parallel logins
# from 127.0.0.1 (lib.sh turns them off).
start_xmppd() {
	xmppd_launch "$DIR"
}

stop_server() {
	if ! term_wait "$SRV_PID" 100; then
		echo "archive bench: xmppd did not exit within 10 s of SIGTERM" >&2
		status=1
	fi
	wait "$SRV_PID" 2>/dev/null
	SRV_PID=
}

# user0..user(2P-1) with password pwI for the chat run, and the owner of
# the seeded archive; one xmppctl per account, 8 at a time.
create_users() {
	{
		seq 0 $((2 * PAIRS - 1)) | sed 's/.*/user& pw&/'
		echo "$MAM_USER $MAM_PASSWORD"
	} | xargs -P 8 -n 2 sh -c \
	    'err=$(printf "%s\n" "$3" | "$0" -s "$1" adduser \
	    "$2@'"$DOMAIN"'" --password-stdin 2>&1 >/dev/null) ||
	    echo "$2:" $err >&2' \
	    "$BUILD/xmppctl" "$DIR/xmppd.sock" 2>"$DIR/adduser-failed"
	[ -s "$DIR/adduser-failed" ] &&
	    die "accounts not created: $(head -n 1 "$DIR/adduser-failed")"
	return 0
}

echo "== archive bench: xmppd, $TLS, loopback; $pinning"
start_xmppd
t=$(now)
create_users
echo "== created $((2 * PAIRS + 1)) accounts in $(since "$t") s; pid $SRV_PID"

# Warm-up (not measured): the client's SCRAM keys, the server's pages.
$CLI_PIN "$BENCH" login -n $((2 * PAIRS)) -c 20 -p "$BENCH_PORT" \
    --tls "$TLS" -d "$DOMAIN" -T "$TIMEOUT" --key-cache "$DIR/keys" \
    --label xmppd-warmup >/dev/null || die "warm-up logins failed"

echo "-- chat: $PAIRS pairs, window $WINDOW, $MESSAGES messages"
$CLI_PIN "$BENCH" chat -n "$MESSAGES" --pairs "$PAIRS" --window "$WINDOW" \
    --body "$BODY" -p "$BENCH_PORT" --tls "$TLS" -d "$DOMAIN" \
    -T "$TIMEOUT" --key-cache "$DIR/keys" --pid "$SRV_PID" \
    --csv "$DIR/chat.csv" | tee "$DIR/chat.out" || status=1
kill -0 "$SRV_PID" 2>/dev/null || die "the server died during the chat run"
stop_server

# Count what was archived, with the daemon stopped.
python3 - "$DIR/xmppd.db" "$DIR/chat.out" <<'EOF' || status=1
import re, sqlite3, sys
db, out = sys.argv[1], open(sys.argv[2]).read()
m = re.search(r" delivered=(\d+) .* elapsed=([\d.]+)s rate=([\d.]+)/s", out)
delivered, elapsed, rate = int(m.group(1)), float(m.group(2)), \
    float(m.group(3))
con = sqlite3.connect(db)
rows, lo, hi = con.execute(
    "SELECT count(*), min(stamp), max(stamp) FROM archive").fetchone()
out_rows = con.execute(
    "SELECT count(*) FROM archive WHERE outgoing = 1").fetchone()[0]
con.close()
span = (hi - lo) / 1000.0 if rows else 0
print("archive: %d rows stored (%d sent copies, %d received copies); "
      "expected 2 x %d delivered = %d: %s"
      % (rows, out_rows, rows - out_rows, delivered, 2 * delivered,
         "ok" if rows == 2 * delivered else "MISMATCH"))
print("archive: 2 x delivered/s = %.0f archived messages/s; stored rows / "
      "their stamp span (%.2f s) = %.0f/s"
      % (2 * rate, span, rows / span if span > 0 else 0))
sys.exit(0 if rows == 2 * delivered else 1)
EOF

# Seed the queried archive while the daemon is stopped: ROWS messages of
# MAM_USER with 10 correspondents, stamps 2 s apart ending now, in the
# format mam_archive.c stores (see README.md).  Prints the public id of
# the middle row, for the middle-page query.
t=$(now)
MIDDLE=$(python3 - "$DIR/xmppd.db" "$DOMAIN" "$MAM_USER" "$ROWS" <<'EOF'
import random, sqlite3, sys, time
db, host, user, rows = sys.argv[1], sys.argv[2], sys.argv[3], \
    int(sys.argv[4])
con = sqlite3.connect(db)
con.execute("PRAGMA journal_mode = WAL")
uid = con.execute("SELECT id FROM users WHERE user = ? AND host = ?",
                  (user, host)).fetchone()[0]
me = "%s@%s" % (user, host)
rnd = random.Random(313)
end = int(time.time() * 1000)
start = end - 2000 * rows
middle = None
words = ("the meeting moved to thursday, can you send the draft before "
         "lunch? thanks, see you there").split()

def gen():
    global middle
    for i in range(rows):
        k = i % 10
        peer = "contact%d@%s" % (k, host)
        full = peer + "/phone"
        # mam_id_new(): the stamp's milliseconds above 22 random bits.
        sid = (start + 2000 * i) << 22 | rnd.getrandbits(22)
        hexid = "%016x" % sid
        if i == rows // 2:
            middle = hexid
        body = " ".join(rnd.choice(words) for _ in range(8 + i % 8))
        outgoing = i % 2
        if outgoing:
            stanza = ("<message xmlns='jabber:client' to='%s' "
                      "type='chat' id='m%d' from='%s/laptop'><body>%s"
                      "</body></message>" % (peer, i, me, body))
        else:
            stanza = ("<message xmlns='jabber:client' to='%s' "
                      "type='chat' id='m%d' from='%s'><body>%s</body>"
                      "<stanza-id xmlns='urn:xmpp:sid:0' by='%s' id='%s'/>"
                      "</message>" % (me, i, full, body, me, hexid))
        # sid is the 64-bit id as SQLite's signed integer (mam_archive.c
        # binds (sqlite3_int64)id).
        yield (uid, sid - (1 << 64) if sid >= 1 << 63 else sid,
               start + 2000 * i, outgoing, peer, peer if outgoing else full,
               stanza)

with con:
    con.executemany("INSERT INTO archive (user_id, sid, stamp, outgoing, "
                    "with_bare, with_full, stanza) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", gen())
con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
con.close()
print(middle)
EOF
) || die "cannot seed the archive"
echo "== seeded $ROWS archived messages of $MAM_USER@$DOMAIN in" \
    "$(since "$t") s (daemon stopped)"
start_xmppd

echo "-- MAM queries: $QUERIES per kind, $PAGE messages a page"
$CLI_PIN python3 "$HERE/peers_seed.py" mam "$BENCH_PORT" "$TLS" \
    SCRAM-SHA-256 "$MAM_USER" "$MAM_PASSWORD" "$QUERIES" "$PAGE" \
    "$MIDDLE" "$DOMAIN" "$DIR/mam.csv" xmppd/1/mam || status=1
kill -0 "$SRV_PID" 2>/dev/null || die "the server died during the queries"
stop_server

mkdir -p "$(dirname "$CSV")"
if [ -s "$DIR/chat.csv" ]; then
	if [ ! -s "$CSV" ]; then
		cat "$DIR/chat.csv" >"$CSV"
	else
		tail -n +2 "$DIR/chat.csv" >>"$CSV"
	fi
	echo "(chat CSV row appended to $CSV)"
fi
[ $status -eq 0 ] || echo "archive bench: some runs had failures" >&2
exit $status
