#!/bin/sh
# Install the Debian packages given as arguments that are missing: with
# apt-get when running as root, otherwise print the command to run.
missing=
for p in "$@"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
	echo "installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing
else
	echo "missing Debian packages:$missing"
	echo "run as root:  apt-get install$missing"
	exit 1
fi
