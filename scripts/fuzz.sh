#!/bin/sh
# Runs every Go fuzz target of the repo for a short, bounded time (CI).
#
#   scripts/fuzz.sh                 every target, FUZZTIME each (default 10s)
#   FUZZTIME=1m scripts/fuzz.sh     longer
#   scripts/fuzz.sh ./process/...   only the targets under these packages
#
# The committed corpora (testdata/fuzz/<Target>/ beside each target) are
# the seeds; new interesting inputs go to the Go build cache, not the repo.
# A failing input is written to testdata/fuzz/<Target>/ by `go test`: commit
# it with the fix, so it stays a regression test.
set -eu

cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10s}
# Fuzz workers; the default (GOMAXPROCS) is fine, but CI machines are small.
PARALLEL=${FUZZ_PARALLEL:-2}

if [ $# -eq 0 ]; then
	set -- ./...
fi

# "<package dir> <target>" for every `func FuzzXxx(f *testing.F)` in a
# _test.go file of the selected packages (vendor and .cache excluded).
targets=$(
	for pkg in $($GO list -f '{{.Dir}}' "$@"); do
		grep -ho '^func Fuzz[A-Za-z0-9_]*(f \*testing\.F)' "$pkg"/*_test.go 2>/dev/null |
			sed -e 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/' -e "s|^|$pkg |" || true
	done
)
if [ -z "$targets" ]; then
	echo "fuzz.sh: no fuzz targets in $*" >&2
	exit 1
fi

failed=0
n=0
echo "$targets" | {
	while read -r dir target; do
		n=$((n + 1))
		rel=./${dir#"$PWD"/}
		echo "=== fuzz $rel $target ($FUZZTIME)"
		# -run '^$': the unit tests run elsewhere; -fuzz runs the seeds first.
		if ! $GO test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" -parallel "$PARALLEL" "$rel"; then
			echo "--- FAIL: $rel $target" >&2
			failed=$((failed + 1))
		fi
	done
	echo "fuzz.sh: $n targets, $failed failed"
	[ "$failed" -eq 0 ]
}
