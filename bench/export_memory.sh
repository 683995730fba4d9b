#!/usr/bin/env bash
# Memory and speed of promcase export/verify/restore on a 1.29 GiB data dir, next to the obvious
# alternatives (tar | gzip, tar | zstd, tar, sha256sum, tar -xzf) on exactly the same files.
#
# Usage: bench/export_memory.sh [WORK_DIR]      (default: ${TMPDIR:-/tmp}/promcase-bench)
#
# WORK_DIR/data is the synthetic data dir (built by bench/make_datadir.ts on the first run, reused
# afterwards; delete WORK_DIR/data.complete to rebuild it). Archives and restored dirs go to
# WORK_DIR/run and are deleted after each step; the whole run needs about 2.7 GiB free there.
# Prints a markdown table on stdout and exits 1 when a command fails or any promcase run reaches
# a max RSS of 150 MiB. Needs deno, GNU tar, gzip, zstd, sha256sum and GNU time (/usr/bin/time).
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
mkdir -p "$work"
work=$(cd "$work" && pwd)
data=$work/data
run=$work/run

for tool in deno tar gzip zstd sha256sum; do
  command -v "$tool" >/dev/null || { echo "export_memory.sh: $tool is required" >&2; exit 2; }
done
if ! /usr/bin/time -v true >/dev/null 2>&1; then
  echo "export_memory.sh: GNU time (/usr/bin/time -v) is required" >&2
  exit 2
fi

cd "$repo"
deno run --allow-read --allow-write "$script_dir/make_datadir.ts" "$data" >&2
rm -rf "$run"
mkdir -p "$run"
trap 'rm -rf "$run"' EXIT

# promcase as a user runs it from a checkout (the working dir is the repo root from here on).
# The V8 flag the compiled binary carries (deno.json compile tasks): measure what ships.
pc=(deno run --allow-all --v8-flags=--max-semi-space-size=1 main.ts)
# Warm up: Deno's module cache, and the page cache for the data dir.
"${pc[@]}" --version >/dev/null
tar -c -C "$data" . >/dev/null
data_bytes=$(du -sb "$data" | cut -f1)
data_files=$(find "$data" -type f | wc -l)

failed=0
rss_over=()
rows=()
declare -A wall_of rss_of size_of

# measure KEY LABEL OUTPUT CMD...: runs CMD under GNU time, recording wall seconds, max RSS (MiB)
# and the size of OUTPUT (a file or dir; "-" for none) under KEY; LABEL is what the table shows.
measure() {
  local key=$1 label=$2 output=$3
  shift 3
  local timing=$run/time.txt log=$run/log.txt
  echo "export_memory.sh: $label" >&2
  if ! /usr/bin/time -v -o "$timing" "$@" >"$log" 2>&1; then
    echo "export_memory.sh: FAILED: $label" >&2
    tail -n 20 "$log" "$timing" >&2 || true
    failed=1
    wall_of[$key]=NaN rss_of[$key]=NaN size_of[$key]=NaN
    rows+=("$key|$label")
    return 0
  fi
  wall_of[$key]=$(awk -F': ' '/Elapsed \(wall clock\)/ {
    n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.2f", s
  }' "$timing")
  rss_of[$key]=$(awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$timing")
  if [ "$output" = - ]; then
    size_of[$key]=-
  else
    size_of[$key]=$(du -sb "$output" | awk '{ printf "%.1f", $1 / 1048576 }')
  fi
  if [[ $key == promcase* ]] && awk -v r="${rss_of[$key]}" -v l=$RSS_LIMIT_MIB 'BEGIN { exit !(r >= l) }'; then
    rss_over+=("$label: ${rss_of[$key]} MiB")
  fi
  rows+=("$key|$label")
}

export_window=(--from 0 --to now --json)
declare -A suffix=([gzip]=tar.gz [zstd]=tar.zst [none]=tar)
declare -A alt_label=(
  [gzip]="tar -c | gzip -6"
  [zstd]="tar -c | zstd -3"
  [none]="tar -c"
)
declare -A alt_filter=([gzip]="gzip -6" [zstd]="zstd -3 -q" [none]="")

# What the Deno runtime and promcase's module graph take before any work.
measure baseline "promcase --version" - "${pc[@]}" --version

for c in gzip zstd none; do
  archive=$run/promcase.${suffix[$c]}
  measure "promcase-export-$c" "promcase export --compression $c" "$archive" \
    "${pc[@]}" export "$data" "${export_window[@]}" --compression "$c" -o "$archive"
  plain=$run/plain.${suffix[$c]}
  measure "alt-export-$c" "${alt_label[$c]}" "$plain" \
    bash -c 'set -o pipefail; if [ -n "$2" ]; then tar -c -C "$1" . | $2 >"$3"; else
      tar -c -C "$1" . >"$3"; fi' _ "$data" "${alt_filter[$c]}" "$plain"
  rm -f "$plain"
  if [ -f "$archive" ]; then
    measure "promcase-verify-$c" "promcase verify (.${suffix[$c]})" - "${pc[@]}" verify "$archive" --json
    measure "alt-verify-$c" "sha256sum (.${suffix[$c]})" - sha256sum "$archive"
    if [ "$c" = gzip ]; then
      measure promcase-restore "promcase restore (.tar.gz)" "$run/restored-promcase" \
        "${pc[@]}" restore "$archive" --into "$run/restored-promcase" --json
      rm -rf "$run/restored-promcase"
      mkdir "$run/restored-tar"
      measure alt-restore "tar -xzf (.tar.gz)" "$run/restored-tar" \
        tar -xzf "$archive" -C "$run/restored-tar"
      rm -rf "$run/restored-tar"
    fi
  fi
  rm -f "$archive" "$archive.sha256"
done

# ratio A B: A / B with two decimals, or "—" when either is missing.
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    if (a == "-" || b == "-" || a == "NaN" || b == "NaN" || b + 0 == 0) print "—"
    else printf "%.2f", a / b
  }'
}

cell() { if [ "$1" = NaN ]; then echo FAILED; elif [ "$1" = - ]; then echo —; else echo "$1"; fi; }

echo
echo "Data dir: $data, $(awk -v b="$data_bytes" 'BEGIN { printf "%.1f MiB", b / 1048576 }') in" \
  "$data_files files; $(deno --version | head -n 1), $(nproc) CPUs, warm page cache."
echo
echo "| command | wall s | max RSS MiB | output MiB | wall × alt | RSS × alt | size × alt |"
echo "|---|--:|--:|--:|--:|--:|--:|"
for row in "${rows[@]}"; do
  key=${row%%|*} label=${row#*|}
  label=${label//|/\\|}
  if [[ $key == promcase* ]]; then
    alt=alt-${key#promcase-}
    r_wall=$(ratio "${wall_of[$key]}" "${wall_of[$alt]:-NaN}")
    r_rss=$(ratio "${rss_of[$key]}" "${rss_of[$alt]:-NaN}")
    r_size=$(ratio "${size_of[$key]}" "${size_of[$alt]:-NaN}")
    label="\`$label\`"
  elif [ "$key" = baseline ]; then
    r_wall="" r_rss="" r_size=""
    label="\`$label\` (runtime baseline)"
  else
    r_wall="" r_rss="" r_size=""
    label="\`$label\` (alternative)"
  fi
  echo "| $label | $(cell "${wall_of[$key]}") | $(cell "${rss_of[$key]}") |" \
    "$(cell "${size_of[$key]}") | $r_wall | $r_rss | $r_size |"
done
echo
echo "Ratios are promcase ÷ alternative. Compression ratio of the data (data dir ÷ archive):" \
  "$(for c in gzip zstd; do
    awk -v d="$data_bytes" -v s="${size_of[promcase-export-$c]}" -v c="$c" \
      'BEGIN { if (s + 0 > 0) printf "%s %.2fx  ", c, d / 1048576 / s }'
  done)"
echo "Total bench time: $((SECONDS - started)) s."

status=0
if [ "$failed" = 1 ]; then
  echo "export_memory.sh: some commands failed (see above)" >&2
  status=1
fi
if [ "${#rss_over[@]}" -gt 0 ]; then
  echo "export_memory.sh: promcase reached the ${RSS_LIMIT_MIB} MiB RSS bound:" >&2
  printf '  %s\n' "${rss_over[@]}" >&2
  status=1
fi
exit $status
