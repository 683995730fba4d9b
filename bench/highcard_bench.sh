#!/usr/bin/env bash
# Is promcase's export EXACT and BOUNDED at high cardinality? Builds (or reuses) a data dir of many
# series with high-entropy values, then runs each command under GNU time (wall time, peak RSS):
#   promcase export DIR --at END --before 1h --compression zstd     (the rewrite)
#   the same with --raw;  promcase export --url against Prometheus serving a copy of DIR
#   promcase inspect --series DIR;  promcase verify and restore of the rewrite archive
#   tar -c FILES | zstd -3  and  tar -c FILES | gzip -1  (FILES: exactly what --raw selects)
# and finally restores the rewrite (and --url) archive and compares every sample of the window
# with the source, read by promtool tsdb dump on both sides (tests/_highcard_compare.ts).
#
# Usage: bench/highcard_bench.sh [WORK_DIR] [--series N] [--metrics N] [--minutes M]
#          [--interval S] [--seed N] [--native-histograms] [--before DUR] [--rss-limit MIB]
#          [--no-url] [--compare-raw] [--promcase DIR] [--keep] [--source scrape|generator|head]
#          [--units N] [--days D] [--scrapes N] [--head-chunks]
#   WORK_DIR     default ${TMPDIR:-/tmp}/promcase-highcard
#   --source scrape (default): a real Prometheus 3.5 scrapes bench/highcard_datadir.ts' target
#                of --series (200000) series over --metrics (100) metric names every --interval
#                (5) s for --minutes (10), values random walks with three decimals; then the
#                target stops (stale markers) and Prometheus. The dir is WORK_DIR/scrape-data,
#                reused while the options stay the same. The window: --before (1h) before the end.
#                --native-histograms: Prometheus also scrapes itself with native histograms on
#                (a few dozen native histogram series; see bench/highcard_datadir.ts).
#   --source generator: bench/make_realistic_datadir.ts --values random-walk --units N --days D
#                (blocks and a 2h17m head written by promcase's writers, WORK_DIR/gen-data); the
#                window: --before before the newest sample. --head-chunks: with the head's full
#                chunks in chunks_head/ as well, as a running Prometheus has them (gen-data-hc).
#   --source head: bench/make_head.ts writes a WAL-only head of --series series (100 metric
#                names, every 20th a native histogram, churn, stale markers, duplicate refs,
#                tombstones) scraped --scrapes (121) times every --interval s, as Prometheus'
#                head writes it (WORK_DIR/head-data); fast even at 1,000,000 series. The window:
#                --before before the last scrape. --head-chunks: with chunks_head/ as Prometheus
#                writes it (every full chunk), in WORK_DIR/head-data-...-hc.
#   --rss-limit  flag promcase runs whose max RSS reaches this many MiB (default 150, as
#                export_bench.sh; 0: no limit)
#   --no-url     skip export --url;  --compare-raw  also compare the restored --raw archive
#   --promcase   run promcase from this checkout (default: this one), e.g. an unpacked
#                `git archive` of an older commit, to compare before and after a change
#   --keep       keep WORK_DIR/run (archives, restored dirs, logs, comparison JSON)
#
# Prints a markdown table on stdout: wall s, max RSS MiB, output MiB, time and size ÷ tar | zstd -3;
# then the comparisons. Exits 1 when a command fails, a comparison finds a difference or a promcase
# run reaches the RSS limit. Needs deno, jq, curl, GNU tar, gzip, zstd and GNU time.
#
# Processes: the data dir builder (and its Prometheus and target) and the Prometheus serving the
# copy for --url run in the background with their pids kept; every exit path (end, error, Ctrl-C,
# SIGTERM) stops them by pid.
set -euo pipefail

started=$SECONDS
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$script_dir/.." && pwd)

usage() {
  sed -n '/^# Usage:/,/^#   --keep/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

work=${TMPDIR:-/tmp}/promcase-highcard
source_kind=scrape series=200000 metrics=100 minutes=10 interval=5 seed=1 before=1h
scrapes=121 units=1400 days=1 rss_limit=150 do_url=1 compare_raw=0 keep=0 native=() promcase_dir=
head_chunks=0
positional=0
while [ $# -gt 0 ]; do
  case $1 in
    --series | --metrics | --minutes | --interval | --seed | --before | --rss-limit | --source | \
      --units | --days | --promcase | --scrapes)
      [ $# -ge 2 ] || usage
      name=${1#--}
      name=${name//-/_}
      [ "$name" = source ] && name=source_kind
      [ "$name" = promcase ] && name=promcase_dir
      printf -v "$name" '%s' "$2"
      shift 2
      ;;
    --no-url) do_url=0 && shift ;;
    --native-histograms) native=(--native-histograms) && shift ;;
    --head-chunks) head_chunks=1 && shift ;;
    --compare-raw) compare_raw=1 && shift ;;
    --keep) keep=1 && shift ;;
    -h | --help) usage ;;
    -*) usage ;;
    *)
      [ $positional = 0 ] || usage
      work=$1 positional=1
      shift
      ;;
  esac
done
case $source_kind in scrape | generator | head) ;; *) usage ;; esac

for tool in deno jq curl tar gzip zstd; do
  command -v "$tool" >/dev/null || { echo "highcard_bench.sh: $tool is required" >&2; exit 2; }
done
if ! /usr/bin/time -v true >/dev/null 2>&1; then
  echo "highcard_bench.sh: GNU time (/usr/bin/time -v) is required" >&2
  exit 2
fi

# dur_ms DUR: a Prometheus duration (1h, 90m, 1h30m, 45s) in milliseconds.
dur_ms() {
  local rest=$1 total=0 n unit
  [[ $rest =~ ^([0-9]+[dhms])+$ ]] || { echo "highcard_bench.sh: bad duration $1" >&2; exit 2; }
  while [[ $rest =~ ^([0-9]+)([dhms])(.*)$ ]]; do
    n=${BASH_REMATCH[1]} unit=${BASH_REMATCH[2]} rest=${BASH_REMATCH[3]}
    case $unit in d) n=$((n * 86400000)) ;; h) n=$((n * 3600000)) ;; m) n=$((n * 60000)) ;;
      s) n=$((n * 1000)) ;; esac
    total=$((total + n))
  done
  echo "$total"
}
before_ms=$(dur_ms "$before")

mkdir -p "$work"
work=$(cd "$work" && pwd)
run=$work/run
rm -rf "$run"
mkdir -p "$run"
cd "$repo"

# Background processes we started, stopped by pid on every exit path.
builder_pid='' url_pid=''
stop_pid() { # stop_pid PID: SIGTERM, up to 20 s, then SIGKILL
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 200; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  stop_pid "$builder_pid"
  # The builder stops its own Prometheus; should it have died first, its pid file remains.
  if [ -f "$run/builder-prometheus.pid" ]; then stop_pid "$(cat "$run/builder-prometheus.pid")"; fi
  stop_pid "$url_pid"
  wait 2>/dev/null || true
  if [ "$keep" = 0 ]; then rm -rf "$run"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bins=$(deno eval 'import { findPrometheus } from "./tests/_prometheus.ts";
  console.log(JSON.stringify(await findPrometheus("newest")));')
prometheus_bin=$(jq -r .prometheus <<<"$bins")
promtool_bin=$(jq -r .promtool <<<"$bins")
prometheus_version=$(jq -r .version <<<"$bins")

# The data dir: built in the background so that a signal reaches the trap at once.
gen_started=$SECONDS
summary=$work/summary-$source_kind.json
if [ "$source_kind" = scrape ]; then
  data=$work/scrape-data
  deno run --allow-all "$script_dir/highcard_datadir.ts" "$data" --series "$series" \
    --metrics "$metrics" --minutes "$minutes" --interval "$interval" --seed "$seed" \
    ${native[@]+"${native[@]}"} --pid-file "$run/builder-prometheus.pid" >"$summary" &
  builder_pid=$!
  wait "$builder_pid"
  builder_pid=''
  at=$(jq -r .endMs "$summary")
  describe="real Prometheus $prometheus_version data dir (head only): $(jq .layout.series \
    "$summary") series over $(jq .layout.metrics "$summary") metric names, random walks with 3 \
decimals, scraped every $(jq .layout.intervalSeconds "$summary") s for $(jq .layout.minutes \
    "$summary") min ($(jq .scrapesServed "$summary") scrapes, $(jq .scrapesFailed "$summary") \
failed; slowest body $(jq .maxBodyBuildMs "$summary") ms; Prometheus peak RSS \
$(jq .prometheusPeakRssMiB "$summary") MiB), then the target stopped (stale markers)"
elif [ "$source_kind" = head ]; then
  data=$work/head-data-$series-$scrapes-$interval-$seed
  hc=()
  [ "$head_chunks" = 1 ] && data=$data-hc hc=(--head-chunks)
  if [ ! -d "$data/wal" ]; then
    deno run --allow-all "$script_dir/make_head.ts" "$data" --series "$series" \
      --scrapes "$scrapes" --interval "$((interval * 1000))" --seed "$seed" \
      ${hc[@]+"${hc[@]}"} >"$summary" &
    builder_pid=$!
    wait "$builder_pid"
    builder_pid=''
    cp "$summary" "$data.json"
  fi
  cp "$data.json" "$summary"
  at=$(jq -r .end "$summary")
  what="a WAL-only head"
  [ "$head_chunks" = 1 ] && what="a head (WAL and chunks_head/)"
  describe="make_head.ts: $what of $series series, $scrapes scrapes every $interval s \
($(jq .samples "$summary") samples, $(jq .staleMarkers "$summary") stale markers, $(jq .segments \
    "$summary") segments): random walks with 3 decimals, counters, native histograms, churn"
else
  data=$work/gen-data
  hc=()
  [ "$head_chunks" = 1 ] && data=$data-hc hc=(--head-chunks)
  deno run --allow-read --allow-write "$script_dir/make_realistic_datadir.ts" "$data" \
    --units "$units" --days "$days" --values random-walk ${hc[@]+"${hc[@]}"} >"$summary" &
  builder_pid=$!
  wait "$builder_pid"
  builder_pid=''
  at=$(jq -r .newestSampleMs "$summary")
  describe="make_realistic_datadir.ts --values random-walk --units $units --days $days: \
$(jq .series "$summary") series, $(jq .samples "$summary") samples, $(jq '.blocks | length' \
    "$summary") blocks, head from $(date -u -d "@$(($(jq .headMinTime "$summary") / 1000))" +%FT%TZ)"
fi
gen_seconds=$((SECONDS - gen_started))
from=$((at - before_ms))

# promcase as the compiled binary runs it: the V8 flags it carries (deno.json compile tasks).
main_ts=$repo/main.ts
if [ -n "$promcase_dir" ]; then main_ts=$(cd "$promcase_dir" && pwd)/main.ts; fi
[ -f "$main_ts" ] || { echo "highcard_bench.sh: no $main_ts" >&2; exit 2; }
pc=(deno run --allow-all --v8-flags=--max-semi-space-size=1,--optimize-for-size "$main_ts")
window=(--at "$at" --before "$before" --no-prometheus-api)

# Warm up: Deno's module cache, and the page cache for the data dir.
"${pc[@]}" --version >/dev/null
tar -c -C "$data" . >/dev/null
data_bytes=$(du -sb "$data" | cut -f1)

# Exactly the files --raw ships: every file of the selected blocks, then the head files.
plan=$run/plan.json
"${pc[@]}" export "$data" "${window[@]}" --raw --dry-run --json >"$plan" 2>/dev/null
files=$run/files.txt
(
  cd "$data"
  for ulid in $(jq -r '.blocks[]' "$plan"); do find "$ulid" -type f; done | sort
  jq -r '.head.files[]' "$plan"
) >"$files"
selected_bytes=$(cd "$data" && tr '\n' '\0' <"$files" | du -cb --files0-from=- | tail -n 1 |
  cut -f1)

failed=0
rss_over=()
rows=()
declare -A wall_of rss_of size_of label_of

# measure KEY LABEL OUTPUT CMD...: runs CMD under GNU time, recording wall seconds, max RSS (MiB)
# and the size of OUTPUT (a file or dir; "-" for none) under KEY. Its output goes to
# $run/KEY.log; a failure is reported and counted, and the bench goes on.
measure() {
  local key=$1 label=$2 output=$3
  shift 3
  local timing=$run/$key.time log=$run/$key.log
  echo "highcard_bench.sh: $label" >&2
  label_of[$key]=$label
  rows+=("$key")
  if ! /usr/bin/time -v -o "$timing" "$@" >"$log" 2>&1; then
    echo "highcard_bench.sh: FAILED: $label" >&2
    tail -n 20 "$log" >&2 || true
    cp "$log" "$work/failed-$key.log"
    failed=1
    wall_of[$key]=NaN rss_of[$key]=NaN size_of[$key]=NaN
    return 0
  fi
  wall_of[$key]=$(awk -F': ' '/Elapsed \(wall clock\)/ {
    n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.1f", s
  }' "$timing")
  rss_of[$key]=$(awk -F': ' '/Maximum resident set size/ { printf "%.0f", $2 / 1024 }' "$timing")
  if [ "$output" = - ]; then
    size_of[$key]=-
  else
    size_of[$key]=$(du -sb "$output" | awk '{ printf "%.1f", $1 / 1048576 }')
  fi
  if [[ $key == pc-* ]] && [ "$rss_limit" != 0 ] &&
    awk -v r="${rss_of[$key]}" -v l="$rss_limit" 'BEGIN { exit !(r >= l) }'; then
    rss_over+=("$label: ${rss_of[$key]} MiB")
  fi
}

# "${tar_to[@]}" OUT DATA FILES FILTER...: the alternative export, tar of the files through FILTER.
tar_to=(bash -c 'set -o pipefail; out=$1 data=$2 files=$3; shift 3
  tar -c -C "$data" -T "$files" | "$@" >"$out"' tar_to)

free_port() {
  deno eval 'const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    console.log(l.addr.port); l.close();'
}

measure pc-rw "promcase export --compression zstd" "$run/rw.tar.zst" \
  "${pc[@]}" export "$data" "${window[@]}" --compression zstd -o "$run/rw.tar.zst"
measure pc-raw "promcase export --raw --compression zstd" "$run/raw.tar.zst" \
  "${pc[@]}" export "$data" "${window[@]}" --raw --compression zstd -o "$run/raw.tar.zst"
if [ "$do_url" = 1 ]; then
  # A Prometheus serving a copy of the data dir (it writes into its dir), no scrape targets.
  cp -a "$data" "$run/url-data"
  rm -f "$run/url-data/lock"
  printf 'global: {}\nscrape_configs: []\n' >"$run/url-prometheus.yml"
  port=$(free_port)
  "$prometheus_bin" --config.file="$run/url-prometheus.yml" --storage.tsdb.path="$run/url-data" \
    --web.listen-address="127.0.0.1:$port" --storage.tsdb.retention.time=3650d \
    >"$run/url-prometheus.log" 2>&1 &
  url_pid=$!
  for ((i = 0; i < 600; i++)); do
    curl -sf -o /dev/null "http://127.0.0.1:$port/-/ready" && break
    kill -0 "$url_pid" 2>/dev/null || break
    sleep 0.5
  done
  if curl -sf -o /dev/null "http://127.0.0.1:$port/-/ready"; then
    measure pc-url "promcase export --url --compression zstd" "$run/url.tar.zst" \
      "${pc[@]}" export --url "http://127.0.0.1:$port" "${window[@]}" --compression zstd \
      -o "$run/url.tar.zst"
  else
    echo "highcard_bench.sh: Prometheus for --url did not get ready:" >&2
    tail -n 20 "$run/url-prometheus.log" >&2
    failed=1
  fi
  stop_pid "$url_pid"
  wait "$url_pid" 2>/dev/null || true
  url_pid=''
  rm -rf "$run/url-data"
fi
measure pc-inspect "promcase inspect --series" - "${pc[@]}" inspect --series "$data" --top 5
measure pc-verify "promcase verify (rewrite .tar.zst)" - "${pc[@]}" verify "$run/rw.tar.zst" --json
measure pc-restore "promcase restore (rewrite .tar.zst)" "$run/restored-rw" \
  "${pc[@]}" restore "$run/rw.tar.zst" --into "$run/restored-rw" --json
measure alt-zstd3 "tar -c FILES | zstd -3" "$run/alt.tar.zst" \
  "${tar_to[@]}" "$run/alt.tar.zst" "$data" "$files" zstd -3 -q
rm -f "$run/alt.tar.zst"
measure alt-gzip1 "tar -c FILES | gzip -1" "$run/alt.tar.gz" \
  "${tar_to[@]}" "$run/alt.tar.gz" "$data" "$files" gzip -1
rm -f "$run/alt.tar.gz"

# The comparisons: every sample of the window, source against the restored archive.
compare=(deno run --allow-all tests/_highcard_compare.ts --promtool "$promtool_bin"
  --min-time "$from" --max-time "$at" --tmp-dir "$run" --max-differences 12 --json)
comparisons=()
declare -A verdict_of
compare_archive() { # compare_archive KIND ARCHIVE
  local kind=$1 archive=$2 dest=$run/restored-$1
  [ -f "$archive" ] || return 0
  if [ ! -d "$dest" ]; then
    "${pc[@]}" restore "$archive" --into "$dest" --json >/dev/null
  fi
  comparisons+=("$kind")
  measure "cmp-$kind" "compare source with restored $kind (promtool dump both)" - \
    bash -c 'out=$1; shift; "$@" >"$out"; code=$?; [ $code -le 1 ]' compare \
    "$run/compare-$kind.json" "${compare[@]}" "$data" "$dest/data"
  if [ -s "$run/compare-$kind.json" ]; then
    verdict_of[$kind]=$(jq -r 'if .identical then "IDENTICAL" else "DIFFERENT" end' \
      "$run/compare-$kind.json")
  else
    verdict_of[$kind]=FAILED
  fi
  [ "${verdict_of[$kind]}" = IDENTICAL ] || failed=1
  rm -rf "$dest"
}
compare_archive rw "$run/rw.tar.zst"
[ "$do_url" = 1 ] && compare_archive url "$run/url.tar.zst"
[ "$compare_raw" = 1 ] && compare_archive raw "$run/raw.tar.zst"

# ratio A B: A / B with two decimals, or "—" when either is missing.
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    if (a == "-" || b == "-" || a == "NaN" || b == "NaN" || a == "" || b == "" || b + 0 == 0)
      print "—"
    else printf "%.2f", a / b
  }'
}
cell() {
  if [ "$1" = NaN ]; then echo FAILED; elif [ "$1" = - ]; then echo —; else echo "$1"; fi
}
mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }

echo
echo "Data dir: $data, $(mib "$data_bytes") MiB: $describe (this run: ${gen_seconds} s to build or" \
  "reuse it). Window: $before before $(date -u -d "@$((at / 1000))" +%FT%TZ) ($from..$at" \
  "ms); --raw selects $(wc -l <"$files") files, $(mib "$selected_bytes") MiB." \
  "$(deno --version | head -n 1), $(nproc) CPUs, warm page cache, $(date -u +%F)." \
  "promcase: $main_ts."
echo
echo "| command | wall s | max RSS MiB | output MiB | time ÷ tar\\|zstd -3 | size ÷ tar\\|zstd -3 |"
echo "|---|--:|--:|--:|--:|--:|"
for key in "${rows[@]}"; do
  label=${label_of[$key]//|/\\|}
  r_wall=$(ratio "${wall_of[$key]}" "${wall_of[alt-zstd3]:-NaN}")
  r_size=""
  [[ $key == pc-rw || $key == pc-raw || $key == pc-url || $key == alt-* ]] &&
    r_size=$(ratio "${size_of[$key]}" "${size_of[alt-zstd3]:-NaN}")
  echo "| \`$label\` | $(cell "${wall_of[$key]}") | $(cell "${rss_of[$key]}") |" \
    "$(cell "${size_of[$key]}") | $r_wall | $r_size |"
done
echo
for kind in "${comparisons[@]}"; do
  json=$run/compare-$kind.json
  echo "Comparison of the source with the restored $kind archive: ${verdict_of[$kind]}"
  if [ -s "$json" ]; then
    jq -r '"  want: \(.want.series) series, \(.want.samples) samples (\(.want.nan) NaN), " +
        "dumped \(if .want.sortedByLabels then "sorted" else "unsorted" end) in \(.want.dumpSeconds) s",
      "  got:  \(.got.series) series, \(.got.samples) samples (\(.got.nan) NaN), " +
        "dumped \(if .got.sortedByLabels then "sorted" else "unsorted" end) in \(.got.dumpSeconds) s",
      "  series: both \(.seriesBoth), differing \(.seriesDiffering), only in source " +
        "\(.seriesOnlyInWant), only in restored \(.seriesOnlyInGot)",
      "  samples: equal \(.samplesEqual), differing \(.samplesDiffer), only in source " +
        "\(.samplesOnlyInWant) (NaN \(.nanOnlyInWant)), only in restored \(.samplesOnlyInGot) " +
        "(NaN \(.nanOnlyInGot))",
      (.differences[] | "    \(.kind) \(.labels) " +
        (if .t != null then "@\(.t) " else "" end) +
        (if .want != null then "source \(.want) restored \(.got)"
         elif .value != null then "\(.value)"
         elif .samples != null then "\(.samples) samples \(.firstT)..\(.lastT)" else "" end)),
      (if .differencesTotal > (.differences | length)
       then "    ... \(.differencesTotal - (.differences | length)) more differences" else empty end)' \
      "$json"
  fi
done
echo
max_rss=0
for key in "${rows[@]}"; do
  if [[ $key == pc-* && ${rss_of[$key]} != NaN && ${rss_of[$key]} -gt $max_rss ]]; then
    max_rss=${rss_of[$key]}
  fi
done
echo "- highest promcase max RSS: $max_rss MiB$([ "$rss_limit" != 0 ] &&
  echo " (flagged at $rss_limit MiB)")."
echo "- rewrite ÷ --raw (both zstd): time $(ratio "${wall_of[pc-rw]:-NaN}" \
  "${wall_of[pc-raw]:-NaN}"), size $(ratio "${size_of[pc-rw]:-NaN}" "${size_of[pc-raw]:-NaN}")."
echo "- Total bench time: $((SECONDS - started)) s."

status=0
if [ "$failed" = 1 ]; then
  echo "highcard_bench.sh: a command failed or a comparison found differences" \
    "(logs in $work/failed-*.log; --keep keeps $run)" >&2
  status=1
fi
if [ "${#rss_over[@]}" -gt 0 ]; then
  echo "highcard_bench.sh: promcase reached the ${rss_limit} MiB RSS limit:" >&2
  printf '  %s\n' "${rss_over[@]}" >&2
  status=1
fi
exit $status
