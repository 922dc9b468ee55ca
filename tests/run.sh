#!/bin/sh
# Run every test: C unit tests, protocol tests (pytest against a real
# xmppd), and short runs of each fuzz target on its seed corpus.  Prints
# one line per suite and a final "N passed, N failed" line; exits non-zero
# if anything failed.  BUILD selects the build directory (build-asan for
# the sanitizer run).
BUILD=${BUILD:-build}
PY=/usr/bin/python3
FUZZ_SECONDS=${FUZZ_SECONDS:-10}
passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

count() {   # count LINE: add "N passed" / "N failed" found in LINE
	p=$(printf '%s\n' "$1" | sed -n 's/.*[^0-9]\([0-9][0-9]*\) passed.*/\1/p;s/^\([0-9][0-9]*\) passed.*/\1/p' | head -1)
	f=$(printf '%s\n' "$1" | sed -n 's/.*[^0-9]\([0-9][0-9]*\) failed.*/\1/p;s/^\([0-9][0-9]*\) failed.*/\1/p' | head -1)
	e=$(printf '%s\n' "$1" | sed -n 's/.*[^0-9]\([0-9][0-9]*\) error.*/\1/p' | head -1)
	passed=$((passed + ${p:-0}))
	failed=$((failed + ${f:-0} + ${e:-0}))
}

echo "== unit tests ($BUILD)"
for t in "$BUILD"/tests/unit/test_*; do
	[ -x "$t" ] || continue
	case "$t" in *.o|*.d) continue ;; esac
	if "$t" >"$log" 2>&1; then rc=0; else rc=$?; fi
	line=$(grep '^unit .*passed' "$log" | tail -1)
	if [ -z "$line" ]; then
		echo "$(basename "$t"): crashed or printed no summary (exit $rc)"
		cat "$log"
		failed=$((failed + 1))
		continue
	fi
	[ $rc -ne 0 ] && grep -v '^unit ' "$log" | head -40
	echo "$line"
	count "$line"
	# a non-zero exit with no failed check (e.g. a sanitizer report)
	case "$line" in *" 0 failed"*) [ $rc -ne 0 ] && failed=$((failed + 1)) ;; esac
done

echo "== layers"
if sh tests/layers.sh; then
	passed=$((passed + 1))
else
	failed=$((failed + 1))
fi

echo "== protocol tests"
if [ -d tests/proto ] && ls tests/proto/test_*.py >/dev/null 2>&1; then
	XMPPD_BIN="$PWD/$BUILD/xmppd" XMPPCTL_BIN="$PWD/$BUILD/xmppctl" \
	    XMPPTOP_BIN="$PWD/$BUILD/xmpptop" \
	    $PY -m pytest -q -p no:cacheprovider tests/proto >"$log" 2>&1
	rc=$?
	line=$(grep -E '^(=+ )?[0-9]+ (passed|failed|error)' "$log" | tail -1)
	if [ $rc -ne 0 ] && [ $rc -ne 1 ] && [ $rc -ne 5 ]; then
		cat "$log" | tail -60
		echo "pytest exited $rc"
		failed=$((failed + 1))
	elif [ $rc -ne 0 ]; then
		grep -E '^(FAILED|ERROR)|Error|assert' "$log" | head -60
	fi
	echo "proto: ${line:-no tests}"
	count "$line"
fi

if [ "$BUILD" = build ] && [ "${SKIP_FUZZ:-0}" != 1 ] && command -v clang >/dev/null; then
	echo "== fuzz smoke runs (${FUZZ_SECONDS}s each)"
	if make --no-print-directory fuzz >"$log" 2>&1; then
		for f in build-fuzz/tests/fuzz/fuzz_*; do
			[ -x "$f" ] || continue
			case "$f" in *.o|*.d) continue ;; esac
			name=${f##*/fuzz_}
			corpus=tests/fuzz/corpus/$name
			mkdir -p "build-fuzz/corpus/$name"
			dict=tests/fuzz/$name.dict
			if "$f" -max_total_time="$FUZZ_SECONDS" -timeout=10 \
			    -rss_limit_mb=2048 "build-fuzz/corpus/$name" \
			    $( [ -f "$dict" ] && echo "-dict=$dict" ) \
			    $( [ -d "$corpus" ] && echo "$corpus" ) >"$log" 2>&1; then
				echo "fuzz $name: ok ($(grep -c . "$log") log lines)"
				passed=$((passed + 1))
			else
				tail -30 "$log"
				echo "fuzz $name: FAILED"
				failed=$((failed + 1))
			fi
		done
	else
		tail -30 "$log"
		echo "fuzz build: FAILED"
		failed=$((failed + 1))
	fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
