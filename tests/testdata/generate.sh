#!/usr/bin/env bash
# Regenerates tests/testdata/datadir/: a small but REAL Prometheus storage dir, written by the
# oldest fetched Prometheus release (Debian bookworm, 2.42.0) so that every later version reads it.
#
#   usage: bash tests/testdata/generate.sh   (needs deno, curl, jq, and the releases fetched by
#                                             `bash tools/fetch-prometheus.sh`)
#   env:   PROMCASE_PROMETHEUS_RELEASES  releases dir (default ${XDG_CACHE_HOME:-$HOME/.cache}/prometheus-releases)
#          GENERATE_TIMEOUT              seconds to wait for the wanted layout (default 600)
#          GENERATE_KEEP_LOG             if set, the Prometheus log is copied to this file
#
# What it does (takes about 5 minutes, nearly all of it waiting for Prometheus):
#   1. Backfills generated OpenMetrics history (tests/_prometheus.ts generateOpenMetrics: 7 series,
#      one sample every 15 s) with `promtool tsdb create-blocks-from openmetrics`:
#        A. one 243-minute compaction window, 3 to 4 hours before "now" (rounded), which promtool
#           cuts at 2h boundaries into 2-3 level-1 blocks;
#        B. one hour inside a single 2h slot of the next 243-minute window (stays one level-1 block).
#   2. Starts prometheus 2.42 on that dir with the hidden flags --storage.tsdb.min-block-duration=1m
#      and --storage.tsdb.max-block-duration=5h, so the compaction ranges are 1m,3m,9m,27m,81m,243m:
#      it self-scrapes every 1 s (a few dozen series kept by metric_relabel_configs) and evaluates a
#      recording rule with a UTF-8 label value. Once the head spans > 1.5 min (~1.5 min after start)
#      it is flushed into 1-minute level-1 blocks, once a minute; every head compaction starts a new
#      WAL segment, and from the 4th on the WAL truncation writes wal/checkpoint.NNNNNNNN. In the same
#      compaction runs the planner merges the A blocks into one level-2 block (the newest block is
#      never a candidate, so this needs the first head block), and 1m head blocks into 3m ones.
#   3. When the dir has >= 3 blocks, a level >= 2 block covering A, a checkpoint, >= 2 WAL segments
#      and a chunks_head file, and the head (per /metrics) spans past its first 1m chunk boundary
#      (so chunks_head holds m-mapped chunks), stops Prometheus with SIGTERM (clean shutdown: no
#      lock, no .tmp dirs), checks all that again and replaces tests/testdata/datadir with the
#      result. The data's timestamps are those of the run (wall clock).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$here/datadir
releases=${PROMCASE_PROMETHEUS_RELEASES:-${XDG_CACHE_HOME:-$HOME/.cache}/prometheus-releases}
bin=$releases/bookworm/usr/bin
timeout=${GENERATE_TIMEOUT:-600}
for tool in "$bin/prometheus" "$bin/promtool"; do
  [ -x "$tool" ] || { echo "generate.sh: $tool missing: run bash tools/fetch-prometheus.sh" >&2; exit 1; }
done
command -v deno >/dev/null && command -v curl >/dev/null && command -v jq >/dev/null ||
  { echo "generate.sh: needs deno, curl and jq" >&2; exit 1; }

work=$(mktemp -d)
data=$work/data
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$data"

# --- 1. backfill ---------------------------------------------------------------------------------
now=$(($(date +%s) * 1000))
W=$((243 * 60 * 1000))        # the largest compaction range (1m * 3^5)
H2=$((2 * 3600 * 1000))
k=$((now / W - 3))
a_start=$((k * W + 1500))     # 1.5 s past the window start: fractional OpenMetrics timestamps
a_end=$(((k + 1) * W - 1))
b_slot=$(((((k + 1) * W + H2 - 1) / H2) * H2))  # first 2h boundary in window k+1
b_start=$((b_slot + 10 * 60 * 1000))
b_end=$((b_start + 3600 * 1000))
backfill() { # start end
  deno eval --quiet "import { generateOpenMetrics } from '$here/../_prometheus.ts';
    await Deno.stdout.write(new TextEncoder().encode(
      generateOpenMetrics({ start: $1, end: $2, stepMs: 15000, series: 4 })));" >"$work/om.txt"
  "$bin/promtool" tsdb create-blocks-from openmetrics "$work/om.txt" "$data"
}
backfill "$a_start" "$a_end"
backfill "$b_start" "$b_end"

# --- 2. run prometheus -------------------------------------------------------------------------
port=$(deno eval --quiet 'const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  console.log((l.addr as Deno.NetAddr).port); l.close();')
cat >"$work/rules.yml" <<'EOF'
groups:
  - name: promcase
    interval: 1s
    rules:
      - record: promcase:up:sum
        expr: sum(up)
        labels:
          note: "café ☕ Zürich"
EOF
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: ["$work/rules.yml"]
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:$port"]
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: "go_goroutines|process_cpu_seconds_total|prometheus_build_info|prometheus_http_requests_total|prometheus_http_request_duration_seconds_.*|prometheus_tsdb_head_(series|chunks)|prometheus_tsdb_compactions_total"
        action: keep
EOF
"$bin/prometheus" --config.file="$work/prometheus.yml" --storage.tsdb.path="$data" \
  --web.listen-address="127.0.0.1:$port" \
  --storage.tsdb.min-block-duration=1m --storage.tsdb.max-block-duration=5h \
  >"$work/prometheus.log" 2>&1 &
pid=$!
echo "prometheus 2.42 (pid $pid) on 127.0.0.1:$port, data in $data" >&2

ready() { # the wanted layout is there
  local blocks=0 merged=0 segs=0 m
  for m in "$data"/*/meta.json; do
    [ -f "$m" ] || continue
    blocks=$((blocks + 1))
    # the merged A block: level >= 2 and minTime == a_start
    if jq -e --argjson a "$a_start" '.compaction.level >= 2 and .minTime == $a' "$m" >/dev/null; then
      merged=1
    fi
  done
  segs=$(find "$data/wal" -maxdepth 1 -name '[0-9]*' -type f | wc -l)
  [ "$blocks" -ge 3 ] && [ "$merged" = 1 ] && [ "$segs" -ge 2 ] &&
    compgen -G "$data/wal/checkpoint.[0-9]*" >/dev/null &&
    [ -n "$(ls -A "$data/chunks_head" 2>/dev/null)" ]
}
head_ready() { # the head holds samples past the first 1m boundary after its min time, so each
  # series has a full chunk that was cut and m-mapped into chunks_head (written out at shutdown)
  curl -fsS "http://127.0.0.1:$port/metrics" | awk '
    /^prometheus_tsdb_head_min_time / { min = $2 } /^prometheus_tsdb_head_max_time / { max = $2 }
    END { m = min - min % 60000; exit !(min > 0 && max - m >= 65000) }'
}
has_chunk() { # a chunks_head file with at least one chunk (non-zero series ref / mint / maxt)
  local f
  for f in "$1"/chunks_head/*; do
    [ -f "$f" ] && od -An -tx1 -j8 -N24 "$f" | grep -q '[1-9a-f]' && return 0
  done
  return 1
}
start=$SECONDS
until ready && head_ready; do
  kill -0 "$pid" 2>/dev/null || { tail -20 "$work/prometheus.log" >&2; echo "generate.sh: prometheus died" >&2; exit 1; }
  if [ $((SECONDS - start)) -gt "$timeout" ]; then
    tail -20 "$work/prometheus.log" >&2; ls -R "$data" >&2
    echo "generate.sh: layout not reached after ${timeout}s" >&2; exit 1
  fi
  sleep 5
done
curl -fsS "http://127.0.0.1:$port/-/ready" >/dev/null

# --- 3. clean shutdown and install -------------------------------------------------------------
kill -TERM "$pid"
for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
if kill -0 "$pid" 2>/dev/null; then echo "generate.sh: prometheus did not stop" >&2; exit 1; fi
wait "$pid" || { tail -20 "$work/prometheus.log" >&2; echo "generate.sh: prometheus exited non-zero" >&2; exit 1; }
pid=
grep -q 'See you next time' "$work/prometheus.log" || { echo "generate.sh: unclean shutdown" >&2; exit 1; }
[ ! -e "$data/lock" ] || { echo "generate.sh: lock file left" >&2; exit 1; }
if find "$data" -name '*.tmp*' | grep -q .; then echo "generate.sh: .tmp left" >&2; exit 1; fi
ready || { ls -R "$data" >&2; echo "generate.sh: layout changed during shutdown" >&2; exit 1; }
has_chunk "$data" || { echo "generate.sh: chunks_head holds no chunk" >&2; exit 1; }
[ -z "${GENERATE_KEEP_LOG:-}" ] || cp "$work/prometheus.log" "$GENERATE_KEEP_LOG"
echo "took $((SECONDS - start))s after start; compactions:" >&2
grep -E 'write block|compact blocks|checkpoint' "$work/prometheus.log" | sed 's/^ts=//' >&2 || true

rm -rf "$out"
cp -a "$data" "$out"
"$bin/promtool" tsdb list "$out"
ls -l "$out/wal" "$out/chunks_head"
du -sh "$out"
