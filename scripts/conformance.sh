#!/usr/bin/env bash
# Conformance: run containerd's own integration/client test suite (at the
# containerd version pinned in conformance/go.mod) against husk.
#
# The suite starts its own containerd (root /var/lib/containerd-test, state
# /run/containerd-test) with the shim under test as the default runtime
# (TEST_RUNTIME). The images it pulls by public name are served offline by
# conformance/imageproxy through HTTPS_PROXY with a throwaway CA
# (SSL_CERT_FILE). The tests to run, and the ones left out with their reasons,
# are in conformance/tests.txt. In a husk run, containerd-shim-runc-v2 on PATH
# is husk too: tests that start a containerd of their own use runc.v2 whatever
# TEST_RUNTIME says (TestRestartMonitor).
#
# Usage: scripts/conformance.sh [--runtime husk|runc] [--run REGEX] [--keep]
#   --runtime runc  reference run against containerd-shim-runc-v2 + runc
#   --run REGEX     run these tests (-test.run) instead of tests.txt's list
#   --keep          keep the work dir (logs, CA, proxy log)
# Env: CONFORMANCE_RUNTIME, CONFORMANCE_RUN, CONFORMANCE_TIMEOUT (default 10m,
#      the suite's -test.timeout).
#
# Prints "conformance: N passed, N failed, N skipped" (top-level tests) and
# exits non-zero if any selected test failed or did not finish. Everything it
# starts, mounts or creates is removed on exit, whatever happens. The full
# log of the last run is kept in .cache/conformance/last-<runtime>.log.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONF="$ROOT/conformance"
CACHE="$ROOT/.cache/conformance"
PKG="github.com/containerd/containerd/v2/integration/client"
SUITE_ROOT=/var/lib/containerd-test
SUITE_STATE=/run/containerd-test
SUITE_NS=testing
RUNC_VERSION=v1.5.3
LOCK=/run/lock/husk-conformance.lock

runtime="${CONFORMANCE_RUNTIME:-husk}"
run_re="${CONFORMANCE_RUN:-}"
timeout="${CONFORMANCE_TIMEOUT:-10m}"
keep=0
while (($#)); do
	case "$1" in
	--runtime) runtime="$2"; shift 2 ;;
	--run) run_re="$2"; shift 2 ;;
	--keep) keep=1; shift ;;
	-h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; exit 0 ;;
	*) echo "conformance: unknown argument $1" >&2; exit 2 ;;
	esac
done
case "$runtime" in
husk) TEST_RUNTIME=io.containerd.husk.v2 ;;
runc) TEST_RUNTIME=io.containerd.runc.v2 ;;
*) echo "conformance: --runtime husk|runc" >&2; exit 2 ;;
esac

log() { printf '== %s\n' "$*" >&2; }
to_seconds() { # Go-style duration of h/m/s units (12m, 1h30m, 90s) in seconds
	local d="$1" n=0
	while [[ $d =~ ^([0-9]+)([hms])(.*)$ ]]; do
		case "${BASH_REMATCH[2]}" in h) n=$((n + BASH_REMATCH[1] * 3600)) ;; m) n=$((n + BASH_REMATCH[1] * 60)) ;; s) n=$((n + BASH_REMATCH[1])) ;; esac
		d="${BASH_REMATCH[3]}"
	done
	[[ -z $d && $n -gt 0 ]] || die "bad duration $1 (want e.g. 10m)"
	echo "$n"
}
die() { printf 'conformance: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (the suite starts containerd and containers)"
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
	export PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null || die "needs Go"
export CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1

# One run at a time on this machine: the suite's paths are fixed.
mkdir -p "$(dirname "$LOCK")"
exec 9>"$LOCK"
flock -w 900 9 || die "another conformance run holds $LOCK"

# ---- build ------------------------------------------------------------------
version="$(cd "$CONF" && go list -m -f '{{.Version}}' github.com/containerd/containerd/v2)"
[[ -n "$version" ]] || die "cannot read the containerd version from conformance/go.mod"
mkdir -p "$CACHE"
testbin="$CACHE/client-$version-$(go env GOVERSION).test"
if [[ ! -x "$testbin" ]]; then
	log "building $PKG@$version test binary (a few minutes cold)"
	(cd "$CONF" && go test -c -o "$testbin.tmp" "$PKG")
	mv -f "$testbin.tmp" "$testbin"
fi
pkgdir="$(cd "$CONF" && go list -f '{{.Dir}}' "$PKG")"

log "building conformance/imageproxy and the busybox base image"
(cd "$CONF" && go build -o "$CACHE/imageproxy" ./imageproxy)
[[ -x /bin/busybox ]] || die "/bin/busybox missing: apt-get install busybox-static"
(cd "$ROOT" && go run ./scripts/mkimage -busybox /bin/busybox -o "$CACHE/busybox-base.tar" \
	-name ghcr.io/containerd/busybox:1.36 >/dev/null)

"$ROOT/scripts/build-containerd.sh" >&2
bindirs="$ROOT/.cache/bin"
alias_runc=0
if [[ $runtime == husk ]]; then
	if [[ ! -x "$ROOT/bin/containerd-shim-husk-v2" ]]; then
		log "building the husk shim"
		make -C "$ROOT" build >&2
	fi
	bindirs="$ROOT/bin:$bindirs"
	# Tests that start a containerd of their own (newDaemonWithConfig:
	# TestRestartMonitor) create containers with the client's built-in
	# default, io.containerd.runc.v2, whatever TEST_RUNTIME says. So that
	# they test husk too, containerd-shim-runc-v2 is husk in this run (set
	# up below, first on PATH); no included test wants runc itself.
	alias_runc=1
else
	if [[ ! -x "$ROOT/.cache/bin/runc" ]]; then
		log "building runc $RUNC_VERSION"
		tags=()
		pkg-config --exists libseccomp 2>/dev/null && tags=(-tags seccomp)
		tmp="$(mktemp -d)"
		(cd "$tmp" && GOFLAGS= GO111MODULE=on GOBIN="$ROOT/.cache/bin" go install "${tags[@]}" "github.com/opencontainers/runc@$RUNC_VERSION") ||
			{ rm -rf "$tmp"; die "runc build failed"; }
		rm -rf "$tmp"
	fi
fi

# ---- test selection ---------------------------------------------------------
# tests.txt: "[include]" names, one a line (run, must pass);
mapfile -t included < <(awk '/^\[include\]/{s=1;next} /^\[/{s=0} s && $1 !~ /^#/ && NF {print $1}' "$CONF/tests.txt")
# "[exclude]" and "[unrelated]": "Name: reason", one a line; not run.
mapfile -t excluded < <(awk '/^\[(exclude|unrelated)\]/{s=1;next} /^\[/{s=0} s && $1 !~ /^#/ && NF {
	if ($0 !~ /^[A-Za-z0-9_]+: *[^ ]/) { print "BAD:" $0; next } sub(/:.*/,"",$1); print $1}' "$CONF/tests.txt")
mapfile -t available < <("$testbin" -test.short -test.list '^Test' 2>/dev/null)
declare -A avail=() listed=()
for t in "${available[@]}"; do avail[$t]=1; done
for t in "${included[@]}" "${excluded[@]}"; do
	[[ $t != BAD:* ]] || die "tests.txt: want \"Name: reason\", have \"${t#BAD:}\""
	[[ -n "${avail[$t]:-}" ]] || die "tests.txt names $t, which $PKG@$version does not have"
	[[ -z "${listed[$t]:-}" ]] || die "tests.txt names $t twice"
	listed[$t]=1
done
for t in "${available[@]}"; do
	[[ -n "${listed[$t]:-}" ]] || log "note: tests.txt does not name $t (new in $version?)"
done
if [[ -z "$run_re" ]]; then
	((${#included[@]})) || die "tests.txt includes no test"
	run_re="^($(IFS='|'; echo "${included[*]}"))\$"
	expected=("${included[@]}")
else
	mapfile -t expected < <("$testbin" -test.short -test.list "$run_re" 2>/dev/null | grep '^Test' || true)
fi

# ---- run, with cleanup of everything it starts ------------------------------
MARK="HUSK_CONFORMANCE_RUN"
FIFO_ROOT=/run/containerd/fifo # where the suite's clients make their stdio FIFOs
# The suite's namespaces: testing, testing-<Test> and TestShimSockLength's
# 76 n's. containerd names cgroups /<namespace>/<id>, runc its state dirs
# /run/containerd/runc/<namespace>.
SUITE_NS_LONG="$(printf 'n%.0s' $(seq 76))"
suite_cgroups() { # the suite's cgroups: /<namespace>[/<id>], /containerd[/{shim,oomshim}]
	find /sys/fs/cgroup -mindepth 2 -maxdepth 4 -type d \( \
		-path "/sys/fs/cgroup/*/$SUITE_NS" -o -path "/sys/fs/cgroup/*/$SUITE_NS/*" \
		-o -path "/sys/fs/cgroup/*/$SUITE_NS-Test*" -o -path "/sys/fs/cgroup/*/$SUITE_NS-Test*/*" \
		-o -path "/sys/fs/cgroup/*/$SUITE_NS_LONG" -o -path "/sys/fs/cgroup/*/$SUITE_NS_LONG/*" \
		-o -path "/sys/fs/cgroup/*/containerd" -o -path "/sys/fs/cgroup/*/containerd/shim" \
		-o -path "/sys/fs/cgroup/*/containerd/oomshim" \) 2>/dev/null | sort
}
RUNC_STATE=/run/containerd/runc
runc_state_dirs() {
	find "$RUNC_STATE" -mindepth 1 -maxdepth 1 -type d \( -name "$SUITE_NS" -o -name "$SUITE_NS-Test*" -o -name "$SUITE_NS_LONG" \) 2>/dev/null | sort
}
# Processes started by a conformance run: they carry $MARK in their
# environment (the test binary, its containerd, the shims and whatever they
# exec), plus their descendants (container processes).
marked_pids() {
	local p
	for p in /proc/[0-9]*; do
		[[ "${p#/proc/}" == "$$" || "${p#/proc/}" == "$BASHPID" ]] && continue
		if { tr '\0' '\n' <"$p/environ"; } 2>/dev/null | grep -q "^$MARK=$1"; then
			echo "${p#/proc/}"
		fi
	done
}
descendants() { # PIDs below the given ones
	ps -e -o pid= -o ppid= | awk -v roots="$*" '
		BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) want[r[i]] = 1 }
		{ kid[$2] = kid[$2] " " $1 }
		END {
			for (i = 1; i <= n; i++) q[++t] = r[i]
			for (h = 1; h <= t; h++) {
				m = split(kid[q[h]], k, " ")
				for (j = 1; j <= m; j++) if (!(k[j] in want)) { want[k[j]] = 1; q[++t] = k[j]; print k[j] }
			}
		}'
}
mounts_under() { # mount points at or below $1, deepest first
	awk -v d="$1" '{ mp=$5; gsub(/\\040/," ",mp); if (mp==d || index(mp, d"/")==1) print mp }' /proc/self/mountinfo | sort -r
}
kill_ours() { # $1: marker value (a run id, or "" for any conformance run)
	local roots pids
	roots="$(marked_pids "$1")"
	[[ -n "$test_pid" ]] && roots="$roots $test_pid"
	[[ -n "${roots// /}" ]] || return 0
	pids="$roots $(descendants $roots)"
	kill -KILL $pids 2>/dev/null || true
	sleep 0.5
}
cleanup_suite_paths() {
	local d m
	for d in "$SUITE_STATE" "$SUITE_ROOT" "$work"; do
		for m in $(mounts_under "$d"); do
			umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
		done
	done
	rm -rf "$SUITE_STATE" "$SUITE_ROOT"
	# FIFO dirs this run left: new, and holding only FIFOs of suite tests
	# (named after the container: Test*).
	ls -1 "$FIFO_ROOT" 2>/dev/null | sort | comm -13 "$fifo_before" - | while read -r d; do
		if [[ -z "$(find "$FIFO_ROOT/$d" -mindepth 1 ! -name 'Test*' -print -quit 2>/dev/null)" ]]; then
			rm -rf "${FIFO_ROOT:?}/$d"
		fi
	done
	# runc's state dirs for the suite's namespaces that this run created
	runc_state_dirs | comm -13 "$work/runc-before" - | while read -r d; do rm -rf "$d"; done
	# cgroups this run created. Processes still in its containers' cgroups
	# are container processes whose shim is gone (a paused container's
	# processes die only once thawed); then remove the (empty) cgroups.
	local new
	new="$(suite_cgroups | comm -13 "$cg_before" - | sort -r)"
	for d in $new; do
		[[ $d == */"$SUITE_NS"*/* || $d == */"$SUITE_NS_LONG"/* ]] || continue
		[[ -f "$d/freezer.state" ]] && echo THAWED >"$d/freezer.state" 2>/dev/null
		[[ -f "$d/cgroup.freeze" ]] && echo 0 >"$d/cgroup.freeze" 2>/dev/null
		for p in $(cat "$d/cgroup.procs" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
	done
	[[ -n "$new" ]] && sleep 0.5
	for d in $new; do rmdir "$d" 2>/dev/null; done
	return 0
}
cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	kill_ours "$run_id"
	cleanup_suite_paths
	[[ -n "$proxy_pid" ]] && kill "$proxy_pid" 2>/dev/null && wait "$proxy_pid" 2>/dev/null
	if ((keep)); then
		log "kept $work"
	else
		rm -rf "$work"
	fi
	exit "$rc"
}
work="$(mktemp -d /tmp/husk-conformance.XXXXXX)"
run_id="$(basename "$work")"
proxy_pid=""
test_pid=""
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$work/tmp"
cg_before="$work/cgroups-before"
suite_cgroups >"$cg_before" || true
fifo_before="$work/fifo-before"
{ ls -1 "$FIFO_ROOT" 2>/dev/null | sort >"$fifo_before"; } || true
runc_state_dirs >"$work/runc-before" || true

# Leftovers of an earlier run that was killed (we hold the lock: no other run).
if [[ -n "$(marked_pids "")" ]]; then
	log "killing processes left by an earlier conformance run"
	kill_ours "" || true
fi
cleanup_suite_paths || true # (|| true: best effort, without set -e inside)

if ((alias_runc)); then
	mkdir -p "$work/shims"
	ln -s "$ROOT/bin/containerd-shim-husk-v2" "$work/shims/containerd-shim-runc-v2"
	bindirs="$work/shims:$bindirs"
fi

"$CACHE/imageproxy" -base "$CACHE/busybox-base.tar" -ca "$work/ca.pem" -addr-file "$work/proxy-addr" \
	>"$work/imageproxy.log" 2>&1 9>&- &
proxy_pid=$!
for _ in $(seq 100); do
	[[ -s "$work/proxy-addr" ]] && break
	kill -0 "$proxy_pid" 2>/dev/null || { cat "$work/imageproxy.log" >&2; die "imageproxy exited"; }
	sleep 0.1
done
[[ -s "$work/proxy-addr" ]] || die "imageproxy did not start"

logfile="$CACHE/last-$runtime.log"
timeout_s="$(to_seconds "$timeout")"
log "running ${#expected[@]} tests of $PKG@$version against $TEST_RUNTIME (log: ${logfile#"$ROOT"/})"
start=$SECONDS
set +e
(
	exec 9>&- # the lock: a leaked process must not hold it
	cd "$pkgdir" # as `go test` does: the suite reads testdata/
	unset http_proxy HTTP_PROXY https_proxy no_proxy NO_PROXY ALL_PROXY all_proxy
	# timeout(1) backs up -test.timeout, which does not cover TestMain's setup.
	exec env "$MARK=$run_id" \
		PATH="$bindirs:$PATH" \
		TEST_RUNTIME="$TEST_RUNTIME" \
		HTTPS_PROXY="$(cat "$work/proxy-addr")" \
		SSL_CERT_FILE="$work/ca.pem" \
		TMPDIR="$work/tmp" \
		timeout -k 10 "$((timeout_s + 60))" \
		"$testbin" -test.root -test.v -no-criu -test.timeout "$timeout" -test.run "$run_re"
) >"$logfile" 2>&1 </dev/null &
test_pid=$!
# Progress: top-level tests as they start and end, not the suite's logs.
tail -n +1 -f --pid="$test_pid" "$logfile" 2>/dev/null |
	grep --line-buffered -E '^(=== RUN\s+[^/]+$|--- |panic:)' &
tail_pid=$!
wait "$test_pid"
rc=$?
test_pid=""
wait "$tail_pid" 2>/dev/null
set -e
log "suite exited $rc after $((SECONDS - start))s"

# ---- count top-level results ------------------------------------------------
declare -A result=()
while read -r verdict name; do
	result[$name]="$verdict"
done < <(sed -n -E 's/^--- (PASS|FAIL|SKIP): (Test[^ ]+) .*/\1 \2/p' "$logfile")
passed=0 failed=0 skipped=0
failed_names=() unfinished=()
for t in "${expected[@]}"; do
	case "${result[$t]:-}" in
	PASS) passed=$((passed + 1)) ;;
	SKIP) skipped=$((skipped + 1)) ;;
	FAIL) failed=$((failed + 1)); failed_names+=("$t") ;;
	*) failed=$((failed + 1)); unfinished+=("$t") ;;
	esac
done
if ((${#failed_names[@]} + ${#unfinished[@]})); then
	# Each failed test's own output (go test -v marks whose output follows
	# with "=== RUN/CONT/NAME"), without the client's debug log lines, and
	# the daemon's errors that name it.
	for t in "${failed_names[@]}" "${unfinished[@]}"; do
		echo "---- $t"
		awk -v t="$t" '
			/^=== (RUN|CONT|NAME|PAUSE) / { split($3, a, "/"); cur = a[1]; next }
			/^[ \t]*--- / { split($3, a, "/"); if (a[1] == t) print; cur = ""; next }
			cur == t && !/^[ \t]+log_hook\.go:/ { print }' "$logfile" | head -n 80 || true
		{ grep -E 'level=(error|warning)' "$logfile" | grep -F -- "$t" | grep -v 'log_hook\.go' | cut -c1-400 | head -n 15; } || true
	done
	((${#failed_names[@]})) && log "failed: ${failed_names[*]}"
	((${#unfinished[@]})) && log "did not finish (suite exit $rc): ${unfinished[*]}"
	{ grep -E -A3 '^panic: ' "$logfile" | head -n 8 >&2; } || true
fi
if ((rc != 0 && failed == 0)); then
	log "the suite failed outside the tests:"
	{ grep -v 'log_hook\.go' "$logfile" | grep -E 'panic|error|FAIL' | head -20 >&2; } || true
	failed=$((failed + 1))
fi
echo "conformance: $passed passed, $failed failed, $skipped skipped"
((failed == 0))
