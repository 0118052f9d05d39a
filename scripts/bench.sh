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
#   SERVE_FLAGS="--commit-max-wait 1ms" bash scripts/bench.sh  # flags for serve
#   BENCH_FLAGS="--http-client std" bash scripts/bench.sh  # flags for trail bench
#
# The figures in docs/PERFORMANCE.md come from this script.
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

runs=${RUNS:-3}
scenarios=${SCENARIOS:-"1:64:20000 100:16:100000 1000:4:200000"}
# shellcheck source=scripts/lib/bench.sh
source scripts/lib/bench.sh

machine
for sc in $scenarios; do
	IFS=: read -r batch conc events <<<"$sc"
	rates=()
	for ((i = 1; i <= runs; i++)); do
		start_server "$tmp/data-$batch-$i" ${SERVE_FLAGS:-}
		"$bin" bench --url "$url" --batch "$batch" --concurrency "$conc" --events "$events" --json --progress 0 --server-pid "$pid" ${BENCH_FLAGS:-} >"$tmp/report.json"
		stop_server
		r=$tmp/report.json
		rate=$(field events_per_sec "$r" | awk '{printf "%.0f", $1}')
		gen="$(member generator_cpu cores "$r") cores $(member generator_cpu us_per_event "$r") µs/event"
		srv="$(member server_cpu cores "$r") cores $(member server_cpu us_per_event "$r") µs/event"
		printf 'batch=%-5s concurrency=%-3s run %d: %7s events/s  p50 %8s ms  p99 %8s ms  server CPU %s  generator CPU %s  missing on read-back: %s\n' \
			"$batch" "$conc" "$i" "$rate" "$(field p50 "$r")" "$(field p99 "$r")" "$srv" "$gen" "$(field missing "$r")"
		rates+=("$rate")
	done
	printf 'batch=%-5s concurrency=%-3s events/s: median %s\n\n' "$batch" "$conc" "$(median "${rates[@]}")"
done
