#!/usr/bin/env bash
# bench-disk.sh measures the embedded store's bytes on disk per event: it
# fills a fresh `trail serve` with `trail bench` (1M events of about 700
# bytes by default), once with sealed segments kept as written and once
# compressed, waits until every sealed segment is compressed, stops the
# server and prints `du -sb` of log/ and index/.
#
#   bash scripts/bench-disk.sh
#   EVENTS=200000 bash scripts/bench-disk.sh
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

events=${EVENTS:-1000000}
# shellcheck source=scripts/lib/bench.sh
source scripts/lib/bench.sh

machine
for compress in false true; do
	data=$tmp/data-$compress
	start_server "$data" --compress-segments="$compress"
	"$bin" bench --url "$url" --batch 1000 --concurrency 4 --events "$events" --json --progress 0 >"$tmp/report.json"
	[[ $compress == true ]] && wait_compressed "$data"
	stop_server
	log=$(du -sb "$data/log" | cut -f1)
	index=$(du -sb "$data/index" | cut -f1)
	printf 'compress-segments=%-5s events %d: log/ %d B, index/ %d B, %.0f B/event (log %.0f, index %.0f)\n' \
		"$compress" "$events" "$log" "$index" "$(((log + index) / events))" "$((log / events))" "$((index / events))"
done
