# Shared by scripts/bench.sh and scripts/bench-auth.sh: build trail into a
# temporary directory, start fresh servers on loopback ports, read figures
# out of `trail bench --json` reports. Source it after `cd` to the repo root.

tmp=$(mktemp -d)
bin=$tmp/trail
pid=
url=
cleanup() {
	[[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
go build -o "$bin" ./cmd/trail

# machine prints what the figures were measured on.
machine() {
	printf 'machine: %s, %s cores, %s\n' "$(uname -m)" "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)"
	printf 'go: %s\n' "$(go version)"
}

# start_server DATA [SERVE FLAGS...] starts `trail serve` on a free loopback
# port over the data directory DATA and sets pid and url.
start_server() {
	local data=$1
	shift
	"$bin" serve --addr 127.0.0.1:0 --data "$data" --log-format json "$@" >"$tmp/out" 2>"$tmp/err" &
	pid=$!
	# START_WAIT seconds (default 30) for it to say it listens: an open
	# that rebuilds the index takes longer.
	for _ in $(seq $((${START_WAIT:-30} * 20))); do
		grep -q 'listening on' "$tmp/out" && break
		sleep 0.05
	done
	url=$(sed -n 's/^listening on //p' "$tmp/out" | head -1)
	[[ -n $url ]] || { cat "$tmp/err" >&2; echo "bench: trail serve did not start" >&2; exit 1; }
}

# stop_server stops the server start_server started.
stop_server() {
	kill "$pid" && wait "$pid" || true
	pid=
}

# field NAME REPORT prints the first number named NAME in a JSON report.
field() { grep -o "\"$1\": [0-9.]*" "$2" | head -1 | awk '{print $2}'; }

# member OBJECT NAME REPORT prints member NAME of the JSON object OBJECT.
member() { sed -n "/\"$1\": {/,/}/p" "$3" | grep -o "\"$2\": [0-9.]*" | awk '{printf "%.2f", $2}'; }

# median prints the median and range of its arguments: "M, range A..B".
median() {
	local sorted
	sorted=$(printf '%s\n' "$@" | sort -n)
	printf '%s, range %s..%s' "$(printf '%s\n' "$sorted" | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')" \
		"$(head -1 <<<"$sorted")" "$(tail -1 <<<"$sorted")"
}

# wait_compressed DATA waits until the server has compressed every sealed
# segment of the embedded store in DATA (only the active one is left as
# written), for at most 10 minutes: a segment that fails to compress, or a
# server run with --compress-segments=false, leaves more, and the figures
# then say so.
wait_compressed() {
	local i
	for ((i = 0; i < 3000; i++)); do
		(($(find "$1/log" -name '*.seg' -o -name '*.tmp' | wc -l) <= 1)) && return 0
		sleep 0.2
	done
	echo "bench: sealed segments in $1/log are still uncompressed after 10 minutes; see the server's log" >&2
}
