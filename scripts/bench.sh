#!/usr/bin/env bash
# bench.sh measures trail end to end on this machine: for each scenario it
# starts a fresh `trail serve` (embedded SQLite, every commit synced) on a
# loopback port, drives it with `trail bench`, and stops it by PID. It
# prints events/s for each run, with the CPU of the load generator and of
# the server (cores, and CPU-µs per event), then the median and the range.
#
#   bash scripts/bench.sh            # 3 runs of each scenario
#   RUNS=5 bash scripts/bench.sh
#   SCENARIOS="1:64:20000" bash scripts/bench.sh   # batch:concurrency:events
#
# The figures in docs/PERFORMANCE.md come from this script.
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

runs=${RUNS:-3}
scenarios=${SCENARIOS:-"1:64:20000 100:16:100000 1000:4:200000"}
tmp=$(mktemp -d)
bin=$tmp/trail
pid=
cleanup() {
	[[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
# member prints member $2 of the JSON object member $1 of report $3.
member() { sed -n "/\"$1\": {/,/}/p" "$3" | grep -o "\"$2\": [0-9.]*" | awk '{printf "%.2f", $2}'; }
go build -o "$bin" ./cmd/trail

printf 'machine: %s, %s cores, %s\n' "$(uname -m)" "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)"
printf 'go: %s\n' "$(go version)"
for sc in $scenarios; do
	IFS=: read -r batch conc events <<<"$sc"
	rates=()
	for ((i = 1; i <= runs; i++)); do
		data=$tmp/data-$batch-$i
		"$bin" serve --addr 127.0.0.1:0 --data "$data" --log-format json >"$tmp/out" 2>"$tmp/err" &
		pid=$!
		for _ in $(seq 100); do
			grep -q 'listening on' "$tmp/out" && break
			sleep 0.05
		done
		url=$(sed -n 's/^listening on //p' "$tmp/out" | head -1)
		"$bin" bench --url "$url" --batch "$batch" --concurrency "$conc" --events "$events" --json --progress 0 --server-pid "$pid" >"$tmp/report.json"
		kill "$pid" && wait "$pid" || true
		pid=
		rate=$(grep -o '"events_per_sec": [0-9.]*' "$tmp/report.json" | awk '{printf "%.0f", $2}')
		p50=$(grep -o '"p50": [0-9.]*' "$tmp/report.json" | awk '{print $2}')
		p99=$(grep -o '"p99": [0-9.]*' "$tmp/report.json" | awk '{print $2}')
		missing=$(grep -o '"missing": [0-9]*' "$tmp/report.json" | awk '{print $2}')
		gen="$(member generator_cpu cores "$tmp/report.json") cores $(member generator_cpu us_per_event "$tmp/report.json") µs/event"
		srv="$(member server_cpu cores "$tmp/report.json") cores $(member server_cpu us_per_event "$tmp/report.json") µs/event"
		printf 'batch=%-5s concurrency=%-3s run %d: %7s events/s  p50 %8s ms  p99 %8s ms  server CPU %s  generator CPU %s  missing on read-back: %s\n' "$batch" "$conc" "$i" "$rate" "$p50" "$p99" "$srv" "$gen" "$missing"
		rates+=("$rate")
	done
	sorted=$(printf '%s\n' "${rates[@]}" | sort -n)
	median=$(printf '%s\n' "$sorted" | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')
	printf 'batch=%-5s concurrency=%-3s median %s events/s, range %s..%s\n\n' "$batch" "$conc" "$median" "$(head -1 <<<"$sorted")" "$(tail -1 <<<"$sorted")"
done
