#!/bin/sh
# The upload benchmark (XEP-0363 over HTTPS, issue 17): N parallel PUTs of
# SIZE bytes to signed slot URLs and then N parallel GETs of them, over
# HTTPS on loopback (tests/bench/upload_bench.py), with throughput and the
# server's CPU per MiB; and the chat latency while they run: xmppbench
# chat paced at a moderate rate, first alone, then with the uploads running
# in rounds for its whole length.  A private xmppd; builds nothing (`make
# bench` builds first).  See tests/bench/README.md, "Upload".
#
# Knobs (environment):
#   BENCH_UPLOAD_FILES   files uploaded (and downloaded) in parallel (100)
#   BENCH_UPLOAD_SIZE    bytes per file (10485760)
#   BENCH_UPLOAD_RATE    chat messages per second, paced (2000)
#   BENCH_UPLOAD_CHAT_SECONDS  length of each chat run, seconds (20)
#   BENCH_UPLOAD_PAIRS   pairs of chatting users (20)
#   BENCH_UPLOAD_CSV     results file (BUILD/bench/upload.csv)
#   BENCH_UPLOAD_DIR     the server's upload-dir (a fresh directory in the
#                        work directory; e.g. a directory on /dev/shm to
#                        take the disk out of the PUT figures)
#   BENCH_TIMEOUT, BENCH_ITERATIONS as in run.sh

set -u

BUILD=${BUILD:-build}
FILES=${BENCH_UPLOAD_FILES:-100}
SIZE=${BENCH_UPLOAD_SIZE:-10485760}
RATE=${BENCH_UPLOAD_RATE:-2000}
SECONDS_CHAT=${BENCH_UPLOAD_CHAT_SECONDS:-20}
PAIRS=${BENCH_UPLOAD_PAIRS:-20}
TIMEOUT=${BENCH_TIMEOUT:-300}
ITER=${BENCH_ITERATIONS:-4096}
CSV=${BENCH_UPLOAD_CSV:-$BUILD/bench/upload.csv}
FILES_DIR=${BENCH_UPLOAD_DIR:-}

BENCH=$BUILD/tests/bench/xmppbench
HERE=$(cd "$(dirname "$0")" && pwd)
DOMAIN=localhost
status=0

die() {
	echo "upload bench: $*" >&2
	exit 1
}
. "$(dirname "$0")/lib.sh"

for f in "$BUILD/xmppd" "$BUILD/xmppctl" "$BENCH"; do
	[ -x "$f" ] || die "$f not built (make BUILD=$BUILD all $BENCH)"
done
command -v openssl >/dev/null || die "openssl (the command) is needed"
[ -x /usr/bin/python3 ] || die "/usr/bin/python3 is needed"

work_dir xmppbench-upload
if [ -n "$FILES_DIR" ]; then
	FILES_DIR=$(mktemp -d "$FILES_DIR/xmppbench-upload-files.XXXXXX") ||
	    die "cannot create a directory in $BENCH_UPLOAD_DIR"
	trap 'work_dir_cleanup; rm -rf "$FILES_DIR"' EXIT
else
	FILES_DIR=$DIR/files
fi
pin_cores

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -nodes -days 30 -subj "/CN=$DOMAIN" \
    -addext "subjectAltName=DNS:$DOMAIN,DNS:upload.$DOMAIN" \
    -keyout "$DIR/key.pem" -out "$DIR/cert.pem" 2>/dev/null ||
    die "cannot create a certificate"
PORT=$(pick_port)
PORT_TLS=$(pick_port "$PORT")
HTTPS_PORT=$(pick_port "$PORT_TLS")
[ "$HTTPS_PORT" = "$PORT" ] && HTTPS_PORT=$(pick_port "$PORT_TLS")

# The upload service on an https listener, its files in the work
# directory; a slot as large as a file (at least the default 10M), no
# per-account quotas and no disk budget (the rounds purge their files).
max=$(( (SIZE + 1048575) / 1048576 ))
[ "$max" -lt 10 ] && max=10
xmppd_launch "$DIR" "listen https $HTTPS_PORT address 127.0.0.1
upload-url \"https://$DOMAIN:$HTTPS_PORT\"
upload-dir \"$FILES_DIR\"" "    upload-file-size ${max}M
    upload-quota 0
    upload-files-per-day 0
    upload-disk 0"

{
	seq 0 $((2 * PAIRS - 1)) | sed 's/.*/user& pw&/'
	echo "upload0 pwupload0"
} | xargs -P 4 -n 2 sh -c \
    'err=$(printf "%s\n" "$3" | "$0" -s "$1" adduser \
    "$2@'"$DOMAIN"'" --password-stdin 2>&1 >/dev/null) ||
    echo "$2:" $err >&2' \
    "$BUILD/xmppctl" "$DIR/xmppd.sock" 2>"$DIR/adduser-failed"
[ -s "$DIR/adduser-failed" ] &&
    die "accounts not created: $(head -n 1 "$DIR/adduser-failed")"

echo "== upload bench: xmppd, https on loopback; $pinning; pid $SRV_PID;" \
    "files in $FILES_DIR"
$CLI_PIN "$BENCH" login -n $((2 * PAIRS)) -c 20 -p "$PORT" -d "$DOMAIN" \
    -T "$TIMEOUT" --key-cache "$DIR/keys" --label warmup >/dev/null ||
    die "warm-up logins failed"

MSGS=$((RATE * SECONDS_CHAT))
chat() {
	$CLI_PIN "$BENCH" chat -n "$MSGS" --rate "$RATE" --pairs "$PAIRS" \
	    --window 16 --body 100 -p "$PORT" -d "$DOMAIN" -T "$TIMEOUT" \
	    --key-cache "$DIR/keys" --pid "$SRV_PID" --label "xmppd/$1" \
	    --csv "$DIR/chat.csv"
}

echo "-- chat alone: $PAIRS pairs, paced at $RATE messages/s, $MSGS messages"
chat chat-alone | tee "$DIR/chat-alone.out" || status=1

echo "-- uploads alone: $FILES files of $SIZE bytes, PUT then GET"
$CLI_PIN nice -n 19 /usr/bin/python3 "$HERE/upload_bench.py" --c2s-port "$PORT" \
    --https-port "$HTTPS_PORT" --pid "$SRV_PID" -n "$FILES" --size "$SIZE" \
    --csv "$DIR/upload.csv" --label xmppd/upload-alone || status=1
"$BUILD/xmppctl" -s "$DIR/xmppd.sock" upload purge "upload0@$DOMAIN" \
    >/dev/null || status=1

echo "-- chat with uploads: the same chat while the uploads run in rounds"
chat chat-uploads >"$DIR/chat-uploads.out" 2>&1 &
CHAT_PID=$!
sleep 0.5
$CLI_PIN nice -n 19 /usr/bin/python3 "$HERE/upload_bench.py" --c2s-port "$PORT" \
    --https-port "$HTTPS_PORT" --pid "$SRV_PID" -n "$FILES" --size "$SIZE" \
    --while-pid "$CHAT_PID" --purge "$BUILD/xmppctl" "$DIR/xmppd.sock" \
    --csv "$DIR/upload.csv" --label xmppd/upload-with-chat || status=1
wait "$CHAT_PID" || status=1
cat "$DIR/chat-uploads.out"
kill -0 "$SRV_PID" 2>/dev/null || die "the server died"

p99() {
	sed -n 's/.* p99=\([0-9.]*\)ms.*/\1/p' "$1"
}
a=$(p99 "$DIR/chat-alone.out")
b=$(p99 "$DIR/chat-uploads.out")
awk -v a="${a:-0}" -v b="${b:-0}" -v r="$RATE" 'BEGIN {
	printf "chat p99 at %d messages/s: %.2f ms alone, %.2f ms while " \
	    "uploads run (target < 10 ms: %s)\n", r, a, b,
	    (b > 0 && b < 10 ? "met" : "NOT MET")
}'

if ! term_wait "$SRV_PID" 100; then
	echo "upload bench: xmppd did not exit within 10 s of SIGTERM" >&2
	status=1
fi
wait "$SRV_PID" 2>/dev/null
SRV_PID=

mkdir -p "$(dirname "$CSV")"
for f in upload chat; do
	out=$CSV
	[ $f = chat ] && out=${CSV%.csv}-chat.csv
	[ -s "$DIR/$f.csv" ] || continue
	if [ ! -s "$out" ]; then
		cat "$DIR/$f.csv" >"$out"
	else
		tail -n +2 "$DIR/$f.csv" >>"$out"
	fi
done
echo "(upload rows appended to $CSV, chat rows to ${CSV%.csv}-chat.csv)"
[ $status -eq 0 ] || echo "upload bench: some runs had failures" >&2
exit $status
