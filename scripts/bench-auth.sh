#!/usr/bin/env bash
# bench-auth.sh measures what authentication costs on the write path: for
# each run it starts a fresh `trail serve` with --auth off, drives it with
# `trail bench`, then a fresh one with --auth on and a write key, and prints
# both rates and their ratio. Runs alternate, so that machine noise falls on
# both sides alike.
#
#   bash scripts/bench-auth.sh                      # 3 runs, batches of 100
#   RUNS=5 SCENARIO=100:16:100000 bash scripts/bench-auth.sh
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

runs=${RUNS:-3}
IFS=: read -r batch conc events <<<"${SCENARIO:-100:16:100000}"
tmp=$(mktemp -d)
bin=$tmp/trail
pid=
cleanup() {
	[[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
go build -o "$bin" ./cmd/trail

# one MODE RUN: serve with --auth MODE, bench it, print "rate p99".
one() {
	local mode=$1 data=$tmp/data-$1-$2 token=
	if [[ $mode == on ]]; then
		token=$("$bin" keys create --data "$data" --name bench --scopes write,read 2>/dev/null | grep -o 'trail_[A-Za-z0-9_]*' | head -1)
		[[ -n $token ]] || { echo "bench-auth: trail keys create printed no key" >&2; exit 1; }
	fi
	"$bin" serve --addr 127.0.0.1:0 --data "$data" --auth "$mode" --log-format json >"$tmp/out" 2>"$tmp/err" &
	pid=$!
	for _ in $(seq 200); do
		grep -q 'listening on' "$tmp/out" && break
		sleep 0.05
	done
	url=$(sed -n 's/^listening on //p' "$tmp/out" | head -1)
	TRAIL_TOKEN=$token "$bin" bench --url "$url" --batch "$batch" --concurrency "$conc" --events "$events" --json --progress 0 >"$tmp/report.json"
	kill "$pid" && wait "$pid" || true
	pid=
	printf '%s %s\n' "$(grep -o '"events_per_sec": [0-9.]*' "$tmp/report.json" | awk '{printf "%.0f", $2}')" \
		"$(grep -o '"p99": [0-9.]*' "$tmp/report.json" | head -1 | awk '{print $2}')"
}

printf 'machine: %s, %s cores, %s\n' "$(uname -m)" "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)"
printf 'batch=%s concurrency=%s events=%s\n' "$batch" "$conc" "$events"
ratios=()
for ((i = 1; i <= runs; i++)); do
	read -r off_rate off_p99 < <(one off "$i")
	read -r on_rate on_p99 < <(one on "$i")
	ratio=$(awk -v a="$on_rate" -v b="$off_rate" 'BEGIN{printf "%.3f", a/b}')
	ratios+=("$ratio")
	printf 'run %d: auth off %7s events/s (p99 %s ms)   auth on %7s events/s (p99 %s ms)   on/off %s\n' \
		"$i" "$off_rate" "$off_p99" "$on_rate" "$on_p99" "$ratio"
done
sorted=$(printf '%s\n' "${ratios[@]}" | sort -n)
printf 'on/off ratio: median %s, range %s..%s\n' \
	"$(printf '%s\n' "$sorted" | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')" \
	"$(head -1 <<<"$sorted")" "$(tail -1 <<<"$sorted")"
