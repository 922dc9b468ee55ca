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

rss_kib() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null
}
