#!/usr/bin/env bash
# Speed, peak memory and archive size of promcase export (rewrite and --raw, gzip and zstd),
# verify and restore on a realistic data dir, next to the obvious alternatives on the same files:
# `tar -c <the files --raw selects> | gzip -1` (and -6) or `| zstd -3`, `sha256sum`, `tar -xzf`.
#
# Usage: bench/export_bench.sh [WORK_DIR] [SIZE]
#   WORK_DIR  default ${TMPDIR:-/tmp}/promcase-bench
#   SIZE      size of the generated data dir, default 2GiB (e.g. 512MiB)
#
# WORK_DIR/data is built by bench/make_realistic_datadir.ts (7 days of 15 s scrapes from node
# exporters, app pods with classic histograms and kube-state-metrics; blocks of levels 1-4 and a
# WAL with a checkpoint) on the first run and reused afterwards (WORK_DIR/data.complete holds its
# layout). The window is the 24h before the newest sample: `export --at <newest> --before 24h`.
# Archives and restored dirs go to WORK_DIR/run and are deleted at the end. Prints a markdown
# table on stdout; exits 1 when a command fails or any promcase run reaches a max RSS of 150 MiB.
# Needs deno, jq, GNU tar, gzip, zstd, sha256sum and GNU time (/usr/bin/time).
#
# Measured with a warm page cache (the data dir is read once first). promcase lowers its own CPU
# and I/O priority (nice 19, ionice idle); on an otherwise idle machine that changes nothing. The
# max RSS of a pipeline is that of its largest process (GNU time reports the maximum, not the sum).
set -euo pipefail

readonly RSS_LIMIT_MIB=150
started=$SECONDS
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$script_dir/.." && pwd)
work=${1:-${TMPDIR:-/tmp}/promcase-bench}
size=${2:-2GiB}
mkdir -p "$work"
work=$(cd "$work" && pwd)
data=$work/data
run=$work/run

for tool in deno jq tar gzip zstd sha256sum; do
  command -v "$tool" >/dev/null || { echo "export_bench.sh: $tool is required" >&2; exit 2; }
done
if ! /usr/bin/time -v true >/dev/null 2>&1; then
  echo "export_bench.sh: GNU time (/usr/bin/time -v) is required" >&2
  exit 2
fi

cd "$repo"
gen_started=$SECONDS
deno run --allow-read --allow-write "$script_dir/make_realistic_datadir.ts" "$data" \
  --size "$size" >"$work/summary.json"
gen_seconds=$((SECONDS - gen_started))
rm -rf "$run"
mkdir -p "$run"
trap 'rm -rf "$run"' EXIT

# promcase as the compiled binary runs it: the V8 flag it carries (deno.json compile tasks).
pc=(deno run --allow-all --v8-flags=--max-semi-space-size=1,--optimize-for-size main.ts)
newest=$(jq -r .newestSampleMs "$work/summary.json")
window=(--at "$newest" --before 24h --no-prometheus-api)

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
if [ "$(wc -l <"$files")" != "$(jq .files "$plan")" ]; then
  echo "export_bench.sh: listed $(wc -l <"$files") files, promcase selects $(jq .files "$plan")" >&2
  exit 1
fi
selected_bytes=$(cd "$data" && tr '\n' '\0' <"$files" | du -cb --files0-from=- | tail -n 1 |
  cut -f1)

failed=0
rss_over=()
rows=()
declare -A wall_of rss_of size_of label_of

# measure KEY LABEL OUTPUT CMD...: runs CMD under GNU time, recording wall seconds, max RSS (MiB)
# and the size of OUTPUT (a file or dir; "-" for none) under KEY.
measure() {
  local key=$1 label=$2 output=$3
  shift 3
  local timing=$run/time.txt log=$run/log.txt
  echo "export_bench.sh: $label" >&2
  label_of[$key]=$label
  rows+=("$key")
  if ! /usr/bin/time -v -o "$timing" "$@" >"$log" 2>&1; then
    echo "export_bench.sh: FAILED: $label" >&2
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
  if [[ $key == pc-* ]] &&
    awk -v r="${rss_of[$key]}" -v l=$RSS_LIMIT_MIB 'BEGIN { exit !(r >= l) }'; then
    rss_over+=("$label: ${rss_of[$key]} MiB")
  fi
}

# "${tar_to[@]}" OUT DATA FILES FILTER...: the alternative export, tar of the files through FILTER.
tar_to=(bash -c 'set -o pipefail; out=$1 data=$2 files=$3; shift 3
  tar -c -C "$data" -T "$files" | "$@" >"$out"' tar_to)

measure pc-raw-gzip "promcase export --raw" "$run/raw.tar.gz" \
  "${pc[@]}" export "$data" "${window[@]}" --raw -o "$run/raw.tar.gz"
measure pc-rw-gzip "promcase export" "$run/rw.tar.gz" \
  "${pc[@]}" export "$data" "${window[@]}" -o "$run/rw.tar.gz"
measure pc-rw-zstd "promcase export --compression zstd" "$run/rw.tar.zst" \
  "${pc[@]}" export "$data" "${window[@]}" --compression zstd -o "$run/rw.tar.zst"
measure pc-raw-zstd "promcase export --raw --compression zstd" "$run/raw.tar.zst" \
  "${pc[@]}" export "$data" "${window[@]}" --raw --compression zstd -o "$run/raw.tar.zst"
measure alt-gzip1 "tar -c FILES | gzip -1" "$run/alt.tar.gz" \
  "${tar_to[@]}" "$run/alt.tar.gz" "$data" "$files" gzip -1
rm -f "$run/alt.tar.gz"
measure alt-gzip6 "tar -c FILES | gzip -6" "$run/alt.tar.gz" \
  "${tar_to[@]}" "$run/alt.tar.gz" "$data" "$files" gzip -6
rm -f "$run/alt.tar.gz"
measure alt-zstd3 "tar -c FILES | zstd -3" "$run/alt.tar.zst" \
  "${tar_to[@]}" "$run/alt.tar.zst" "$data" "$files" zstd -3 -q
rm -f "$run/alt.tar.zst" "$run/raw.tar.zst" "$run/raw.tar.zst.sha256" "$run/rw.tar.zst" \
  "$run/rw.tar.zst.sha256"

for kind in raw rw; do
  archive=$run/$kind.tar.gz
  [ -f "$archive" ] || continue
  measure "pc-verify-$kind" "promcase verify ($kind .tar.gz)" - "${pc[@]}" verify "$archive" --json
  measure "alt-verify-$kind" "sha256sum ($kind .tar.gz)" - sha256sum "$archive"
  measure "pc-restore-$kind" "promcase restore ($kind .tar.gz)" "$run/restored-pc" \
    "${pc[@]}" restore "$archive" --into "$run/restored-pc" --json
  rm -rf "$run/restored-pc"
  mkdir "$run/restored-tar"
  measure "alt-restore-$kind" "tar -xzf ($kind .tar.gz)" "$run/restored-tar" \
    tar -xzf "$archive" -C "$run/restored-tar"
  rm -rf "$run/restored-tar"
done

# promcase's gzip level, from the header's XFL byte (4: fastest, 2: best, 0: anything between).
gzip_level=6
if [ -f "$run/raw.tar.gz" ]; then
  case $(od -An -tu1 -j8 -N1 "$run/raw.tar.gz" | tr -d ' ') in
    4) gzip_level=1 ;;
    2) gzip_level=9 ;;
  esac
fi
rm -f "$run"/*.tar.gz "$run"/*.sha256

# ratio A B: A / B with two decimals, or "—" when either is missing.
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    if (a == "-" || b == "-" || a == "NaN" || b == "NaN" || b + 0 == 0) print "—"
    else printf "%.2f", a / b
  }'
}
cell() {
  if [ "$1" = NaN ]; then echo FAILED; elif [ "$1" = - ]; then echo —; else echo "$1"; fi
}
mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }

# What each promcase row is compared with.
declare -A versus=(
  [pc-raw-gzip]=alt-gzip$([ "$gzip_level" = 1 ] && echo 1 || echo 6)
  [pc-rw-gzip]=pc-raw-gzip
  [pc-rw-zstd]=pc-raw-zstd
  [pc-raw-zstd]=alt-zstd3
  [pc-verify-raw]=alt-verify-raw
  [pc-verify-rw]=alt-verify-rw
  [pc-restore-raw]=alt-restore-raw
  [pc-restore-rw]=alt-restore-rw
)

echo
echo "Data dir: $data, $(mib "$data_bytes") MiB, $(jq '.blocks | length' "$work/summary.json")" \
  "blocks, $(jq .series "$work/summary.json") series, $(jq .samples "$work/summary.json")" \
  "samples (generated in $(jq .generationSeconds "$work/summary.json") s;" \
  "this run: ${gen_seconds} s). Window: 24h before the newest sample" \
  "($(date -u -d "@$((newest / 1000))" +%FT%TZ)); --raw selects $(wc -l <"$files") files," \
  "$(mib "$selected_bytes") MiB. $(deno --version | head -n 1), $(nproc) CPUs, warm page cache," \
  "$(date -u +%F). promcase gzip level $gzip_level."
echo
echo "| command | wall s | max RSS MiB | output MiB | compared with | time × | size × |"
echo "|---|--:|--:|--:|---|--:|--:|"
for key in "${rows[@]}"; do
  label=${label_of[$key]//|/\\|}
  other=${versus[$key]:-}
  if [ -n "$other" ]; then
    vs="\`${label_of[$other]//|/\\|}\`"
    r_wall=$(ratio "${wall_of[$key]}" "${wall_of[$other]:-NaN}")
    r_size=$(ratio "${size_of[$key]}" "${size_of[$other]:-NaN}")
  else
    vs="" r_wall="" r_size=""
  fi
  [[ $key == pc-verify-* || $key == pc-restore-* ]] && r_size=""
  echo "| \`$label\` | $(cell "${wall_of[$key]}") | $(cell "${rss_of[$key]}") |" \
    "$(cell "${size_of[$key]}") | $vs | $r_wall | $r_size |"
done
echo
echo "time × and size × are this row ÷ the compared row." \
  "Total bench time: $((SECONDS - started)) s."
echo
max_rss=0
for key in "${rows[@]}"; do
  if [[ $key == pc-* && ${rss_of[$key]} != NaN && ${rss_of[$key]} -gt $max_rss ]]; then
    max_rss=${rss_of[$key]}
  fi
done
w() { ratio "${wall_of[$1]}" "${wall_of[$2]}"; }
z() { ratio "${size_of[$1]}" "${size_of[$2]}"; }
echo "- \`--raw\` (gzip) time ÷ \`tar | gzip -1\`: $(w pc-raw-gzip alt-gzip1)," \
  "÷ \`tar | gzip -6\`: $(w pc-raw-gzip alt-gzip6);" \
  "\`--raw --compression zstd\` ÷ \`tar | zstd -3\`: $(w pc-raw-zstd alt-zstd3)"
echo "- rewrite ÷ \`--raw\`: gzip time $(w pc-rw-gzip pc-raw-gzip)," \
  "size $(z pc-rw-gzip pc-raw-gzip); zstd time $(w pc-rw-zstd pc-raw-zstd)," \
  "size $(z pc-rw-zstd pc-raw-zstd)"
echo "- highest promcase max RSS: $max_rss MiB (bound: < $RSS_LIMIT_MIB MiB)"

status=0
if [ "$failed" = 1 ]; then
  echo "export_bench.sh: some commands failed (logs in $work/failed-*.log)" >&2
  status=1
fi
if [ "${#rss_over[@]}" -gt 0 ]; then
  echo "export_bench.sh: promcase reached the ${RSS_LIMIT_MIB} MiB RSS bound:" >&2
  printf '  %s\n' "${rss_over[@]}" >&2
  status=1
fi
exit $status
