#!/usr/bin/env bash
# test.sh runs every check and test of trail; it is the one test command of
# the README and what .ci/run calls.
#
#   bash scripts/test.sh                  # everything
#   bash scripts/test.sh -run TestAppend  # extra arguments go to `go test`
#   bash scripts/test.sh -v ./sqlite/     # packages given: only those
#
# It first installs what the tests need and the machine lacks (nginx,
# docker-compose, gcc; with apt-get, as root or through sudo), so that it
# works on a fresh Debian machine. Then it fails on unformatted files
# (gofmt -l), runs go vet, staticcheck
# (pinned), builds the FerretDB test server (tools/ferretdb, cached under
# .cache/ferretdb by the hash of its sources), starts it on a free loopback
# port with a throwaway data directory, and runs `go test -race -count=1
# -timeout 10m` (later arguments win) with these variables set for the tests:
#
#   TRAIL_TEST_MONGODB_URI   mongodb:// URI of that server
#   TRAIL_TEST_FERRETDB_BIN  the server binary, for tests that stop and
#                            restart a server of their own
#   TRAIL_TEST_NGINX         the nginx binary, if it is installed
#
# A TRAIL_TEST_MONGODB_URI already set names a server to use instead of
# starting one. With CI=true the tests fail, not skip, when a server or tool
# they need is missing. FerretDB is stopped by its PID on exit. Last, with no
# arguments, every fuzz target runs for FUZZTIME (default 100000x: a count of
# executions, not a duration; see the fuzzing section) each.
set -Eeuo pipefail

# Pinned: staticcheck v0.8.2 is release 2026.2.2, the newest, and supports Go 1.26.
STATICCHECK=honnef.co/go/tools/cmd/staticcheck@v0.8.2

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

say() { printf '\n==> %s\n' "$*" >&2; }
warn() { printf 'test.sh: warning: %s\n' "$*" >&2; }
die() {
	printf 'test.sh: error: %s\n' "$*" >&2
	exit 1
}

# Step timings, printed on exit whatever the outcome.
timings=()
step_start=0
step_name=
begin() {
	say "$1"
	step_name=$1
	step_start=$SECONDS
}
end() {
	timings+=("$(printf '%4ds  %s' $((SECONDS - step_start)) "$step_name")")
	step_name=
}

fdb_pid=
build_pid=
tmp=
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ -n $build_pid ]] && kill -0 "$build_pid" 2>/dev/null; then
		kill -TERM -- "-$build_pid" 2>/dev/null || kill "$build_pid" 2>/dev/null || true
		wait "$build_pid" 2>/dev/null || true
	fi
	if [[ -n $fdb_pid ]] && kill -0 "$fdb_pid" 2>/dev/null; then
		kill -TERM "$fdb_pid" 2>/dev/null || true
		for _ in $(seq 50); do
			kill -0 "$fdb_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$fdb_pid" 2>/dev/null || true
		wait "$fdb_pid" 2>/dev/null || true
	fi
	if ((rc != 0)) && [[ -s ${tmp:-/nonexistent}/ferretdb.log ]]; then
		printf '\ntest.sh: the end of the FerretDB log:\n' >&2
		tail -n 30 "$tmp/ferretdb.log" >&2
	fi
	if [[ -n $tmp ]]; then
		rm -rf "$tmp"
	fi
	if [[ -n $step_name ]]; then
		timings+=("$(printf '%4ds  %s (failed)' $((SECONDS - step_start)) "$step_name")")
	fi
	if ((${#timings[@]})); then
		printf '\ntest.sh: step times\n' >&2
		printf '  %s\n' "${timings[@]}" >&2
		printf '%4ds  total\n' "$SECONDS" | sed 's/^/  /' >&2
	fi
	if ((rc == 0)); then
		printf 'test.sh: PASS\n' >&2
	else
		printf 'test.sh: FAIL (exit %d)\n' "$rc" >&2
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- system packages -----------------------------------------------------
# The tests need nginx (the NGINX tests run the real server on loopback
# ports), docker-compose (only for `docker-compose config`; no Docker engine
# is needed), gcc for cgo (go test -race) and git. Whatever is missing is
# installed here with apt, as root or through sudo, so that this one command
# works on a fresh Debian machine exactly as it does in CI.
install_missing() {
	local missing=() sudo=() policy= rc=0
	command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
	command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
	command -v gcc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
	command -v git >/dev/null 2>&1 || missing+=(git)
	command -v chromium >/dev/null 2>&1 || missing+=(chromium)
	((${#missing[@]})) || return 0

	say "installing ${missing[*]} with apt-get"
	if ((EUID != 0)); then
		command -v sudo >/dev/null 2>&1 ||
			die "${missing[*]} missing, and installing needs root or sudo: run as root, or apt-get install -y --no-install-recommends ${missing[*]}"
		sudo=(sudo)
	fi
	# Keep the nginx package from starting a system nginx on port 80: the
	# tests start their own, as a child process on loopback ports.
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		policy=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
		"${sudo[@]}" chmod 755 "$policy"
	fi
	# No recommends: docker-compose would otherwise pull in the Docker engine.
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" || rc=$?
	[[ -z $policy ]] || "${sudo[@]}" rm -f "$policy"
	((rc == 0)) || die "apt-get install ${missing[*]} failed (exit $rc); its output is above"
}
install_missing

# --- tools ---------------------------------------------------------------

if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
	export PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null 2>&1 ||
	die "go is not on PATH. Install Go $(sed -n 's/^go //p' go.mod) or newer (https://go.dev/dl/) and add its bin directory to PATH."
if ! command -v gofmt >/dev/null 2>&1; then
	PATH="$(go env GOROOT)/bin:$PATH"
	export PATH
fi
say "$(go version)"
if [[ $(go env CGO_ENABLED) != 1 ]] || ! command -v "$(go env CC)" >/dev/null 2>&1; then
	die "go test -race needs cgo and a C compiler, and '$(go env CC)' is missing or CGO_ENABLED=0. On Debian: apt-get install -y gcc libc6-dev"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/trail-test.XXXXXX")

# --- FerretDB build, in the background -----------------------------------
# The cold build takes minutes, mostly downloading and compiling FerretDB's
# dependencies; it overlaps with the static checks below.

fdb_bin=${TRAIL_TEST_FERRETDB_BIN:-}
fdb_log=$tmp/ferretdb-build.log
fdb_build_start=$SECONDS
if [[ -n $fdb_bin ]]; then
	[[ -x $fdb_bin ]] || die "TRAIL_TEST_FERRETDB_BIN=$fdb_bin is not an executable file."
else
	key=$(cat tools/ferretdb/go.mod tools/ferretdb/go.sum tools/ferretdb/*.go |
		{ cat; go env GOVERSION GOOS GOARCH; } | sha256sum | cut -c1-16)
	fdb_bin=$root/.cache/ferretdb/$key/ferretdb
	if [[ ! -x $fdb_bin ]]; then
		say "building the FerretDB test server in the background (cold: about 3 minutes) -> ${fdb_bin#"$root"/}"
		mkdir -p "$(dirname "$fdb_bin")"
		rm -f "$fdb_bin".tmp.*
		# In a session of its own, so that an early exit stops the whole
		# build (go and its compilers), not just this subshell.
		# shellcheck disable=SC2016 # expanded by the inner bash
		setsid -w bash -c '
			set -e
			cd tools/ferretdb
			go build -mod=readonly -trimpath -buildvcs=false -o "$1.tmp.$$" .
			mv -f "$1.tmp.$$" "$1"
			find "$2" -mindepth 1 -maxdepth 1 -type d ! -name "$3" -exec rm -rf {} +
		' build "$fdb_bin" "$root/.cache/ferretdb" "$key" >"$fdb_log" 2>&1 &
		build_pid=$!
	fi
fi

# --- static checks -------------------------------------------------------

begin "gofmt -l"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	mapfile -d '' gofiles < <(git ls-files -z --cached --others --exclude-standard -- '*.go')
else
	mapfile -d '' gofiles < <(find . -name '*.go' -not -path './.cache/*' -not -path './.git/*' -print0)
fi
existing=()
for f in "${gofiles[@]}"; do
	[[ -f $f ]] && existing+=("$f")
done
unformatted=
if ((${#existing[@]})); then
	unformatted=$(gofmt -l "${existing[@]}")
fi
if [[ -n $unformatted ]]; then
	printf '%s\n' "$unformatted" >&2
	die "these files are not gofmt-formatted; run: gofmt -w $(echo "$unformatted" | tr '\n' ' ')"
fi
end

begin "go vet ./..."
go vet ./...
end

begin "staticcheck ./... ($STATICCHECK)"
go run "$STATICCHECK" ./... ||
	die "staticcheck failed (its findings are above; the first run downloads $STATICCHECK through the Go module proxy)."
end

begin "generated code is current (scripts/gen.sh)"
# Regenerates proto/ into a scratch directory and compares it with gen/.
# The pinned buf and plugins are built once into .cache/gen-tools (cold:
# about 3 minutes), then reused.
bash scripts/gen.sh "$tmp/gen" >&2 || die "scripts/gen.sh failed; its output is above."
diff -r gen "$tmp/gen" >&2 ||
	die "gen/ is stale: the protos in proto/ changed without regenerating; run: bash scripts/gen.sh"
end

# --- FerretDB ------------------------------------------------------------

begin "FerretDB test server build"
if [[ -n $build_pid ]]; then
	if ! wait "$build_pid"; then
		build_pid=
		cat "$fdb_log" >&2
		die "building the FerretDB test server (tools/ferretdb) failed; the build output is above. It needs the Go module proxy to be reachable."
	fi
	build_pid=
	timings+=("$(printf '%4ds  %s' $((SECONDS - fdb_build_start)) "(FerretDB build, from the start of the run)")")
else
	say "using ${fdb_bin#"$root"/} (cached)"
fi
(cd tools/ferretdb && go vet ./...)
end

export TRAIL_TEST_FERRETDB_BIN=$fdb_bin

if [[ -n ${TRAIL_TEST_MONGODB_URI:-} ]]; then
	say "using the MongoDB server at TRAIL_TEST_MONGODB_URI=$TRAIL_TEST_MONGODB_URI"
else
	begin "FerretDB start"
	"$fdb_bin" -listen 127.0.0.1:0 -dir "$tmp/ferretdb" -uri-file "$tmp/mongodb-uri" >"$tmp/ferretdb.log" 2>&1 &
	fdb_pid=$!
	for _ in $(seq 300); do
		[[ -s $tmp/mongodb-uri ]] && break
		kill -0 "$fdb_pid" 2>/dev/null || break
		sleep 0.1
	done
	if [[ ! -s $tmp/mongodb-uri ]]; then
		cat "$tmp/ferretdb.log" >&2
		die "the FerretDB test server did not start within 30 s; its log is above."
	fi
	uri=$(<"$tmp/mongodb-uri")
	hostport=${uri#mongodb://}
	hostport=${hostport%%/*}
	port=${hostport##*:}
	for _ in $(seq 300); do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
		sleep 0.1
	done
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || die "FerretDB wrote $uri but does not accept connections on port $port."
	export TRAIL_TEST_MONGODB_URI=$uri
	say "FerretDB (pid $fdb_pid) is listening: TRAIL_TEST_MONGODB_URI=$uri"
	end
fi

# --- other servers the tests use -----------------------------------------

if [[ -z ${TRAIL_TEST_NGINX:-} ]]; then
	TRAIL_TEST_NGINX=$(command -v nginx || true)
	[[ -z $TRAIL_TEST_NGINX && -x /usr/sbin/nginx ]] && TRAIL_TEST_NGINX=/usr/sbin/nginx
fi
if [[ -n $TRAIL_TEST_NGINX ]]; then
	export TRAIL_TEST_NGINX
else
	unset TRAIL_TEST_NGINX
	warn "nginx is not installed: the NGINX tests will skip (and fail with CI=true). On Debian: apt-get install -y nginx"
fi
command -v docker-compose >/dev/null 2>&1 ||
	warn "docker-compose is not installed: the compose file checks will skip (and fail with CI=true). On Debian: apt-get install -y --no-install-recommends docker-compose"

# --- tests ---------------------------------------------------------------

pkgs=(./...)
for a in "$@"; do
	if [[ $a == . || $a == ./* || $a == ../* ]]; then
		pkgs=()
	fi
done
begin "go test -race -count=1 $* ${pkgs[*]}"
go test -race -count=1 -timeout 10m "$@" "${pkgs[@]}"
end

# --- fuzzing ---------------------------------------------------------------
# Every fuzz target runs for a bounded budget (FUZZTIME); a crash fails the
# run, and go test saves the input under testdata/fuzz/ for a regression seed.
# Skipped when arguments narrow the run.
#
# The default budget is a count of executions, not a duration. With a
# duration, Go 1.26's fuzz coordinator can fail a target at the deadline with
# a bare "context deadline exceeded" and no input (go.dev/issue/75804, fixed
# in Go 1.27); a count sets no deadline, so a loaded machine only runs slower.
# If a duration is given anyway, a failure that wrote no new input and printed
# only that message is reported as the known race, not as a finding.
fuzztime=${FUZZTIME:-100000x}
if (($# == 0)) && [[ $fuzztime != 0 ]]; then
	begin "go test -fuzz, $fuzztime per target"
	while IFS=: read -r file name; do
		dir=./$(dirname "$file")
		corpus=$dir/testdata/fuzz/$name
		before=$( (ls "$corpus" 2>/dev/null || true) | wc -l)
		say "fuzz $name in $dir"
		log=$(mktemp)
		# pipefail: the pipeline fails when go test does.
		if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -parallel 2 "$dir" 2>&1 | tee "$log" >&2; then
			rm -f "$log"
			continue
		fi
		after=$( (ls "$corpus" 2>/dev/null || true) | wc -l)
		if ((after == before)) && grep -q '^    context deadline exceeded$' "$log" &&
			! grep -q -E 'panic:|Failing input written' "$log"; then
			warn "fuzz target $name stopped with Go's fuzztime deadline race (go.dev/issue/75804) and wrote no input; not a finding"
			rm -f "$log"
			continue
		fi
		rm -f "$log"
		die "fuzz target $name in $dir failed; the failing input is saved under $corpus"
	done < <(git grep -o -E '^func Fuzz[A-Za-z0-9_]+' -- '*_test.go' | sed 's/func //')
	end
fi
