#!/bin/sh
# The layer check (make lint, make test): dependencies point down.
#
#   net      bytes, TLS                 may include: net
#   store    storage                    may include: store
#   core     sessions, routing, IM      may include: core store
#   stream   XML streams, SASL          may include: stream net core store
#   mod      one file per XEP           may include: mod core store
#   web      HTTP services of modules   may include: web mod core store net
#   control  control socket, stats      may include: anything below it
#   xmppd.c  start-up                   may include: anything
#
# Every file of xmppd/ may include shared/ headers and the process-wide
# headers at the top of xmppd/ (conf.h, work.h, xmppd.h), whose own files
# include nothing of the layers.  Nothing but start-up (xmppd.c) and the
# control plane itself includes control/: it observes through hooks.
# shared/, xmppctl/ and xmpptop/ include nothing of xmppd/.
# Prints one line per violation and exits 1 if there is any.
cd "$(dirname "$0")/.." || exit 2
status=0

allowed() {     # allowed LAYER: the folders LAYER may include
	case $1 in
	net) echo "net" ;;
	store) echo "store" ;;
	core) echo "core store" ;;
	stream) echo "stream net core store" ;;
	mod) echo "mod core store" ;;
	web) echo "web mod core store net" ;;
	control) echo "control core store mod net stream web" ;;
	root) echo "" ;;
	start) echo "control core store mod net stream web" ;;
	*) echo "" ;;
	esac
}

layer_of() {    # layer_of FILE
	case $1 in
	xmppd/xmppd.c) echo start ;;
	xmppd/*/*) f=${1#xmppd/}; echo "${f%%/*}" ;;
	xmppd/*) echo root ;;
	*) echo outside ;;
	esac
}

check_file() {  # check_file FILE
	layer=$(layer_of "$1")
	ok=$(allowed "$layer")
	grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$1" |
	while IFS= read -r line; do
		n=${line%%:*}
		hdr=$(printf '%s\n' "$line" | sed 's/.*include[[:space:]]*"\([^"]*\)".*/\1/')
		case $hdr in
		*/*) dir=${hdr%%/*} ;;
		conf.h|work.h|xmppd.h)
			if [ "$layer" = outside ]; then
				echo "$1:$n: $hdr is the daemon's; $layer code may not include it"
			fi
			continue ;;
		*) continue ;;  # shared/ (or a local header of xmpptop/)
		esac
		case " $ok " in
		*" $dir "*) ;;
		*)
			if [ "$layer" = outside ] || [ "$layer" = root ]; then
				echo "$1:$n: $hdr: $1 may include no layer of xmppd/"
			else
				echo "$1:$n: $hdr: the $layer layer may not include $dir/ (allowed: $ok)"
			fi ;;
		esac
	done
}

out=$(
	# (tests may reach into any layer)
	for f in $(find xmppd shared xmppctl xmpptop -name '*.[ch]' |
	    sort); do
		check_file "$f"
	done
)
if [ -n "$out" ]; then
	printf '%s\n' "$out"
	echo "layers: $(printf '%s\n' "$out" | wc -l) upward include(s);" \
	    "see tests/layers.sh and HACKING.md"
	status=1
else
	echo "layers: every include points down"
fi
exit $status
