# Shell helpers of the benchmark scripts (run.sh, archive.sh, peers.sh),
# sourced by them; each script defines its own die().

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

# A socket listening on the port (state 0A); closed connections of an
# earlier server on it linger in TIME_WAIT, so port_in_use says too little.
port_listening() {
	hex=$(printf '%04X' "$1")
	cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
	    awk -v p=":$hex" '$2 ~ p"$" && $4 == "0A" { f = 1 } END { exit !f }'
}

# pick_port [AVOID]: a free port in 20000..31999, not AVOID.
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

# wait_quiet PID TENTHS: until the process used under 5% of a core over
# the last second, at most TENTHS tenths of a second (a server working
# through what the end of a run left it, e.g. a big room's leaves).
wait_quiet() {
	i=0
	prev=$(cpu_ticks "$1")
	while [ $i -lt "$2" ] && kill -0 "$1" 2>/dev/null; do
		sleep 1
		cur=$(cpu_ticks "$1")
		[ -z "$cur" ] && return 0
		[ $((cur - prev)) -lt 5 ] && return 0
		prev=$cur
		i=$((i + 10))
	done
}

# utime + stime of PID in clock ticks (fields 14 and 15 of its stat).
cpu_ticks() {
	sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }'
}

rss_kib() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null
}

# xmppd_launch INST [TOP] [LIMITS] [STARTTLS]: write INST/xmppd.conf (the
# database, control socket and log in INST; STARTTLS on $PORT, required
# unless STARTTLS says optional, direct TLS on $PORT_TLS; $DIR/cert.pem;
# $ITER SCRAM iterations; every per-address, rate and connection limit
# off; TOP lines at the top level, LIMITS lines inside limits), start
# xmppd ($SRV_PIN in front) and wait until its control socket answers.
# Sets SRV_PID.
xmppd_launch() {
	cat >"$1/xmppd.conf" <<EOC
log-level warn
storage "$1/xmppd.db"
control-socket "$1/xmppd.sock"
scram-iterations $ITER
${2:-}
listen c2s $PORT address 127.0.0.1 starttls ${4:-required}
listen c2s-tls $PORT_TLS address 127.0.0.1
limits {
    connections-per-ip 0
    preauth-connections-per-ip 0
    stanzas-per-second 0
    bytes-per-second 0
    max-connections 0
    muc-messages-per-second 0
    muc-rooms-per-hour 0
    muc-occupants 1000000
${3:-}
}
host "$DOMAIN" {
    certificate "$DIR/cert.pem"
    key "$DIR/key.pem"
}
EOC
	$SRV_PIN "$BUILD/xmppd" -d -f "$1/xmppd.conf" 2>"$1/server.log" &
	SRV_PID=$!
	i=0
	until "$BUILD/xmppctl" -s "$1/xmppd.sock" status >/dev/null 2>&1; do
		kill -0 "$SRV_PID" 2>/dev/null || {
			cat "$1/server.log" >&2
			die "xmppd exited at start-up"
		}
		[ $i -ge 100 ] && die "xmppd did not answer within 10 s"
		sleep 0.1
		i=$((i + 1))
	done
}

# term_wait PID TENTHS: SIGTERM, wait up to TENTHS tenths of a second, then
# SIGKILL.  Returns 0 if it exited by itself, 1 if it had to be killed.
term_wait() {
	kill -TERM "$1" 2>/dev/null
	i=0
	while kill -0 "$1" 2>/dev/null && [ $i -lt "$2" ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -0 "$1" 2>/dev/null || return 0
	kill -KILL "$1" 2>/dev/null
	return 1
}

# pin_cores: the server on core 0 and the load generator on core 1 when
# there are two cores and taskset; sets SRV_PIN, CLI_PIN and pinning (the
# sentence the output prints).
pin_cores() {
	SRV_PIN=
	CLI_PIN=
	cores=$(nproc 2>/dev/null || echo 1)
	if [ "$cores" -ge 2 ] && command -v taskset >/dev/null; then
		SRV_PIN="taskset -c 0"
		CLI_PIN="taskset -c 1"
		pinning="server pinned to core 0, load generator to core 1"
		pinning="$pinning ($cores cores)"
	else
		pinning="not pinned ($cores core(s) or no taskset): server"
		pinning="$pinning and load generator share the CPU"
	fi
}

# work_dir PREFIX: a fresh temporary DIR that goes away, with the server
# SRV_PID still running in it, when the script exits or is interrupted.
work_dir() {
	DIR=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX") || die "mktemp failed"
	SRV_PID=
	trap work_dir_cleanup EXIT
	trap 'exit 130' INT TERM
}
work_dir_cleanup() {
	if [ -n "$SRV_PID" ] && kill -0 "$SRV_PID" 2>/dev/null; then
		term_wait "$SRV_PID" 100
	fi
	rm -rf "$DIR"
}
