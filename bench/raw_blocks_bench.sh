#!/usr/bin/env bash
# Speed and peak memory of `promcase export --raw` over data dirs of many small blocks (hosts whose
# blocks a Thanos sidecar uploads keep only 2h blocks), next to `tar -c FILES | gzip -1` and
# `tar -c FILES | zstd -3` of the same files, for a small and a large block count: memory must not
# grow with the number of blocks.
#
# Usage: bench/raw_blocks_bench.sh [WORK_DIR] [DAYS...]
#   WORK_DIR  default ${TMPDIR:-/tmp}/promcase-raw-bench
#   DAYS      days of 2h blocks per data dir, default "25 225" (about 300 and 2,700 blocks of about
#             1 MiB: 300 MiB and 2.7 GiB)
# Environment: REPEAT (default 2) runs of each command, the fastest kept (the max RSS is the
# highest); PROMCASE_ROOT (default this checkout) the promcase to run, e.g. an older checkout.
#
# WORK_DIR/blocks-DAYS is built by bench/make_realistic_datadir.ts --units 1 --max-block-hours 2
# on the first run and reused afterwards. The window covers every block and the head. promcase
# runs with --no-nice (the alternatives run at normal priority, and on a shared machine priority
# decides the wall time) and --no-prometheus-api; with a warm page cache. Prints a markdown table;
# exits 1 when a command fails or a promcase run reaches a max RSS of 150 MiB.
# Needs deno, jq, GNU tar, gzip, zstd and GNU time (/usr/bin/time).
set -euo pipefail

readonly RSS_LIMIT_MIB=150
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$script_dir/.." && pwd)
root=${PROMCASE_ROOT:-$repo}
work=${1:-${TMPDIR:-/tmp}/promcase-raw-bench}
shift || true
days_list=("$@")
[ "${#days_list[@]}" -gt 0 ] || days_list=(25 225)
repeat=${REPEAT:-2}
mkdir -p "$work"
work=$(cd "$work" && pwd)
run=$work/run

for tool in deno jq tar gzip zstd; do
  command -v "$tool" >/dev/null || { echo "raw_blocks_bench.sh: $tool is required" >&2; exit 2; }
done
if ! /usr/bin/time -v true >/dev/null 2>&1; then
  echo "raw_blocks_bench.sh: GNU time (/usr/bin/time -v) is required" >&2
  exit 2
fi

pc=(deno run --allow-all --v8-flags=--max-semi-space-size=1,--optimize-for-size "$root/main.ts")
rm -rf "$run"
mkdir -p "$run"
trap 'rm -rf "$run"' EXIT

# best KEY CMD...: runs CMD $repeat times under GNU time; keeps the lowest wall seconds and the
# highest max RSS (MiB) in wall_of[KEY] and rss_of[KEY], and the output size (MiB) of the last run.
declare -A wall_of rss_of size_of
failed=0
best() {
  local key=$1
  shift
  local timing=$run/time.txt log=$run/log.txt i wall rss
  wall_of[$key]="" rss_of[$key]=0
  for ((i = 0; i < repeat; i++)); do
    rm -f "$run/out" "$run/out.sha256"
    echo "raw_blocks_bench.sh: $key (run $((i + 1)) of $repeat)" >&2
    if ! /usr/bin/time -v -o "$timing" "$@" >"$log" 2>&1; then
      echo "raw_blocks_bench.sh: FAILED: $key" >&2
      tail -n 20 "$log" >&2 || true
      failed=1
      wall_of[$key]=NaN rss_of[$key]=NaN size_of[$key]=NaN
      return 0
    fi
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {
      n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.2f", s
    }' "$timing")
    rss=$(awk -F': ' '/Maximum resident set size/ { printf "%.0f", $2 / 1024 }' "$timing")
    if [ -z "${wall_of[$key]}" ] || awk -v a="$wall" -v b="${wall_of[$key]}" 'BEGIN { exit !(a < b) }'; then
      wall_of[$key]=$wall
    fi
    [ "$rss" -gt "${rss_of[$key]}" ] && rss_of[$key]=$rss
    size_of[$key]=$(du -b "$run/out" | awk '{ printf "%.0f", $1 / 1048576 }')
  done
}

ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    if (a == "NaN" || b == "NaN" || b + 0 == 0) print "—"; else printf "%.2f", a / b
  }'
}

rows=()
rss_over=()
for days in "${days_list[@]}"; do
  data=$work/blocks-$days
  deno run --allow-read --allow-write "$script_dir/make_realistic_datadir.ts" "$data" \
    --days "$days" --units 1 --max-block-hours 2 >"$work/summary-$days.json"
  newest=$(jq -r .newestSampleMs "$work/summary-$days.json")
  window=(--at "$newest" --before "$((days + 1))d" --no-prometheus-api --no-nice)
  "${pc[@]}" export "$data" "${window[@]}" --raw --dry-run --json >"$run/plan.json" 2>/dev/null
  files=$run/files.txt
  (
    cd "$data"
    for ulid in $(jq -r '.blocks[]' "$run/plan.json"); do find "$ulid" -type f; done | sort
    jq -r '.head.files[]' "$run/plan.json"
  ) >"$files"
  if [ "$(wc -l <"$files")" != "$(jq .files "$run/plan.json")" ]; then
    echo "raw_blocks_bench.sh: listed $(wc -l <"$files") files, promcase selects" \
      "$(jq .files "$run/plan.json")" >&2
    exit 1
  fi
  blocks=$(jq '.blocks | length' "$run/plan.json")
  bytes=$(cd "$data" && tr '\n' '\0' <"$files" | du -cb --files0-from=- | tail -n 1 | cut -f1)
  tar -c -C "$data" -T "$files" >/dev/null # warm the page cache

  best "gzip-$days" "${pc[@]}" export "$data" "${window[@]}" --raw -o "$run/out"
  best "zstd-$days" "${pc[@]}" export "$data" "${window[@]}" --raw --compression zstd \
    -o "$run/out"
  best "tar-gzip-$days" bash -c 'tar -c -C "$1" -T "$2" | gzip -1 >"$3"' _ "$data" "$files" "$run/out"
  best "tar-zstd-$days" bash -c 'tar -c -C "$1" -T "$2" | zstd -3 -q >"$3"' _ "$data" "$files" \
    "$run/out"
  for key in "gzip-$days" "zstd-$days"; do
    if [ "${rss_of[$key]}" != NaN ] && [ "${rss_of[$key]}" -ge $RSS_LIMIT_MIB ]; then
      rss_over+=("$key: ${rss_of[$key]} MiB")
    fi
  done
  row="| $blocks | $(jq .files "$run/plan.json") | $((bytes / 1048576)) |"
  row+=" ${wall_of[gzip-$days]} | ${wall_of[tar-gzip-$days]} |"
  row+=" $(ratio "${wall_of[gzip-$days]}" "${wall_of[tar-gzip-$days]}") |"
  row+=" ${wall_of[zstd-$days]} | ${wall_of[tar-zstd-$days]} |"
  row+=" $(ratio "${wall_of[zstd-$days]}" "${wall_of[tar-zstd-$days]}") |"
  row+=" ${rss_of[gzip-$days]} | ${rss_of[zstd-$days]} |"
  row+=" ${size_of[gzip-$days]} / ${size_of[tar-gzip-$days]} |"
  row+=" ${size_of[zstd-$days]} / ${size_of[tar-zstd-$days]} |"
  rows+=("$row")
done

echo
echo "promcase: $root; $(deno --version | head -n 1), $(nproc) CPUs, best of $repeat," \
  "$(date -u +%F). Times in seconds, RSS and sizes in MiB."
echo
echo "| blocks | files | data | --raw gzip | tar \\| gzip -1 | × | --raw zstd | tar \\| zstd -3 |" \
  "× | max RSS gzip | max RSS zstd | size gzip / gzip -1 | size zstd / zstd -3 |"
echo "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
printf '%s\n' "${rows[@]}"

status=0
if [ "$failed" = 1 ]; then status=1; fi
if [ "${#rss_over[@]}" -gt 0 ]; then
  echo "raw_blocks_bench.sh: promcase reached the ${RSS_LIMIT_MIB} MiB RSS bound:" >&2
  printf '  %s\n' "${rss_over[@]}" >&2
  status=1
fi
exit $status
