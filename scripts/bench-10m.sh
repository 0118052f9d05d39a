#!/usr/bin/env bash
# bench-10m.sh fills one fresh `trail serve` (embedded store, every commit
# synced) with PHASES phases of PHASE events (default 10 x 1M), in batches
# of 1,000 from 4 clients, and prints the rate of each phase: the fill
# curve. Each phase has its own tenant (t0, t1, ...) and one of four
# actions. Then, at the full size, it measures:
#   - disk: bytes of the log and of the index, per event;
#   - the server's RSS;
#   - GET /logs/{id} and a filtered page (tenant, action prefix, a time
#     window of WINDOW, limit 100; tenant t1, whose action is
#     acct.suspended) with trail bench-reads, 8 and 2 clients back to
#     back, and 8 clients offering a fixed rate (GET_RATE, LIST_RATE);
#     GET /healthz, the floor that HTTP and the machine set;
#   - the same reads again on a server restarted with GOMAXPROCS=
#     READ_GOMAXPROCS (default 8; empty: skip), more Ps than cores, so
#     that a thread the kernel preempts does not hold up the requests
#     queued on its P (see docs/PERFORMANCE.md);
#   - open: a clean restart, to "listening";
#   - recovery: a restart after kill -9 in the middle of ingest;
#   - the RSS after the restart;
#   - a rebuild of the index from the log (index/ deleted), as an upgrade
#     that changes the index's version does.
# Traffic goes to 127.0.0.1 only; the servers are stopped by PID.
#
#   bash scripts/bench-10m.sh
#   PHASES=2 PHASE=500000 bash scripts/bench-10m.sh   # a quicker look
#   DATA=/some/dir bash scripts/bench-10m.sh           # keep the data
#   DATA=/some/dir READS_ONLY=1 bash scripts/bench-10m.sh
#                                 # just the reads, on data filled before
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

phases=${PHASES:-10}
phase=${PHASE:-1000000}
window=${WINDOW:-10s}
# shellcheck source=scripts/lib/bench.sh
source scripts/lib/bench.sh
data=${DATA:-$tmp/data}

rss() { awk '/^VmRSS/ {printf "%.0f MB", $2/1024}' "/proc/$pid/status"; }

# open_timed starts the server on $data and sets took to the seconds it
# took to say it listens (start_server polls every 50 ms).
open_timed() {
	local t0
	t0=$(date +%s.%N)
	start_server "$data"
	took=$(echo "$(date +%s.%N) - $t0" | bc)
}

# reads LABEL measures the reads listed at the top on the running server.
reads() {
	local run mode clients rate args r
	for run in get:8:0 list:8:0 get:2:0 list:2:0 get:8:${GET_RATE:-5000} list:8:${LIST_RATE:-500} path:8:0; do
		IFS=: read -r mode clients rate <<<"$run"
		args=(--mode "$mode" --rate "$rate")
		[[ $mode == list ]] && args+=(--tenant t1 --action 'acct.*' --window "$window")
		"$bin" bench-reads --url "$url" "${args[@]}" --concurrency "$clients" --duration 10s --json --server-pid "$pid" >"$tmp/reads.json" 2>/dev/null
		r=$tmp/reads.json
		printf 'reads %-9s %-4s %d clients %-13s %6.0f requests/s  p50 %s ms  p99 %s ms  max %s ms  %s records each  errors %s  server %s µs/request  generator %s µs/request\n' \
			"$1" "$mode" "$clients" "$([[ $rate == 0 ]] && echo 'back to back' || echo "offering $rate")" "$(field requests_per_sec "$r")" \
			"$(field p50 "$r")" "$(field p99 "$r")" "$(field max "$r")" "$(field records_per_request "$r")" "$(field errors "$r")" \
			"$(member server_cpu us_per_event "$r")" "$(member generator_cpu us_per_event "$r")"
	done
}

machine
if [[ -n ${READS_ONLY:-} ]]; then
	start_server "$data"
	reads default
	stop_server
	if [[ -n ${READ_GOMAXPROCS-8} ]]; then
		GOMAXPROCS=${READ_GOMAXPROCS-8} start_server "$data"
		reads "procs=${READ_GOMAXPROCS-8}"
		stop_server
	fi
	exit 0
fi
start_server "$data"
actions=(acct.created acct.suspended pay.captured user.login)
for ((i = 0; i < phases; i++)); do
	"$bin" bench --url "$url" --batch 1000 --concurrency 4 --events "$phase" --tenant "t$i" --action "${actions[i % 4]}" \
		--check=false --json --progress 0 --server-pid "$pid" >"$tmp/report.json"
	r=$tmp/report.json
	printf 'fill %2d: records %9d to %9d: %7.0f events/s  p99 %8s ms  server %s cores %s µs/event  generator %s cores  RSS %s\n' \
		"$((i + 1))" "$((i * phase))" "$(((i + 1) * phase))" "$(field events_per_sec "$r")" "$(field p99 "$r")" \
		"$(member server_cpu cores "$r")" "$(member server_cpu us_per_event "$r")" "$(member generator_cpu cores "$r")" "$(rss)"
done
total=$((phases * phase))
printf 'server RSS at %d records: %s\n' "$total" "$(rss)"

# 8 clients back to back saturate the 2 cores the generator shares; 2
# clients, or a fixed rate, show the latency of a read on a machine that
# is not saturated.
reads default
if [[ -n ${READ_GOMAXPROCS-8} ]]; then
	stop_server
	GOMAXPROCS=${READ_GOMAXPROCS-8} start_server "$data"
	reads "procs=${READ_GOMAXPROCS-8}"
fi

# Sealed segments are compressed in the background: measure the disk after.
wait_compressed "$data"
stop_server
# After a clean stop the index's WAL is checkpointed away.
log=$(du -sb "$data/log" | cut -f1)
index=$(du -sb "$data/index" | cut -f1)
printf 'disk at %d records: log %d MB (%.0f B/event), index %d MB (%.0f B/event)\n' \
	"$total" "$((log >> 20))" "$(echo "$log / $total" | bc -l)" "$((index >> 20))" "$(echo "$index / $total" | bc -l)"
open_timed
printf 'open after a clean stop: %.2f s to listening; RSS %s\n' "$took" "$(rss)"

# Recovery: kill -9 while 4 clients send batches, then open again.
"$bin" bench --url "$url" --batch 1000 --concurrency 4 --duration 30s --check=false --progress 0 --retries 0 >/dev/null 2>&1 &
gen=$!
sleep 3
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
pid=
wait "$gen" 2>/dev/null || true
open_timed
printf 'open after kill -9 mid-ingest: %.2f s to listening; RSS %s\n' "$took" "$(rss)"
sleep 3
printf 'RSS 3 s later: %s\n' "$(rss)"
stop_server

# An index of another version, or a deleted one, is rebuilt from the log
# before the server listens: what an upgrade that changes it costs.
rm -rf "$data/index"
START_WAIT=1800 open_timed
printf 'open after deleting index/ (a full rebuild): %.1f s to listening; RSS %s\n' "$took" "$(rss)"
stop_server
