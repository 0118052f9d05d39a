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
# shellcheck source=scripts/lib/bench.sh
source scripts/lib/bench.sh

# one MODE RUN: serve with --auth MODE, bench it, print "rate p99".
one() {
	local mode=$1 data=$tmp/data-$1-$2 token=
	if [[ $mode == on ]]; then
		token=$("$bin" keys create --data "$data" --name bench --scopes write,read 2>/dev/null | grep -o 'trail_[A-Za-z0-9_]*' | head -1)
		[[ -n $token ]] || { echo "bench-auth: trail keys create printed no key" >&2; exit 1; }
	fi
	start_server "$data" --auth "$mode"
	TRAIL_TOKEN=$token "$bin" bench --url "$url" --batch "$batch" --concurrency "$conc" --events "$events" --json --progress 0 >"$tmp/report.json"
	stop_server
	printf '%s %s\n' "$(field events_per_sec "$tmp/report.json" | awk '{printf "%.0f", $1}')" "$(field p99 "$tmp/report.json")"
}

machine
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
printf 'on/off ratio: median %s\n' "$(median "${ratios[@]}")"
