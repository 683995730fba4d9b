#!/usr/bin/env bash
# Regenerates the block fixtures of tests/tsdb_block_*_test.ts, written by REAL Prometheus 3.5.3
# (the newest fetched release, Debian sid):
#
#   backfill/<ULID>/  `promtool tsdb create-blocks-from openmetrics` of generated OpenMetrics text
#                     (fixed timestamps in 2026-01-01 00:10 .. 01:55 UTC, one 2h block):
#                     counters and gauges, edge float values (NaN, ±Inf, -0, subnormal, max),
#                     label values with quotes, backslashes, newlines, tabs and emoji, and two
#                     series whose timestamps walk the delta-of-delta bucket edges of the XOR chunk
#                     (±8192/8193, ±65536/65537, ±524288/524289, …).
#   tombstoned/<ULID>/ the backfill block after Prometheus' admin API `delete_series` deleted parts of
#                     three series (tombstones file with several intervals, numTombstones in meta).
#   native/<ULID>/    the first 1-minute head block of a `prometheus --enable-feature=native-histograms`
#                     (with the hidden `--storage.tsdb.min-block-duration=1m`) that scrapes itself every
#                     second: integer native histograms (exponential schema), custom-bucket histograms
#                     (schema -53, `convert_classic_histograms_to_nhcb`), float histograms (recording
#                     rule over `rate()`), floats, and stale markers: a fake target drops a float
#                     series for 15 s and a classic histogram for good (stale float and stale custom-
#                     bucket histogram samples), and a config reload after ~25 s drops the histogram
#                     rule (a stale float histogram sample).
#
#   usage: bash tests/testdata/tsdb/generate.sh   (needs deno, curl and the releases fetched by
#                                                 `bash tools/fetch-prometheus.sh`; ~2.5 min)
#   env:   PROMCASE_PROMETHEUS_RELEASES  releases dir (default ${XDG_CACHE_HOME:-$HOME/.cache}/prometheus-releases)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
releases=${PROMCASE_PROMETHEUS_RELEASES:-${XDG_CACHE_HOME:-$HOME/.cache}/prometheus-releases}
bin=$releases/sid/usr/bin
for tool in "$bin/prometheus" "$bin/promtool"; do
  [ -x "$tool" ] || { echo "generate.sh: $tool missing: run bash tools/fetch-prometheus.sh" >&2; exit 1; }
done
command -v deno >/dev/null && command -v curl >/dev/null || { echo "generate.sh: needs deno and curl" >&2; exit 1; }

work=$(mktemp -d)
pid=
fpid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  if [ -n "$fpid" ] && kill -0 "$fpid" 2>/dev/null; then kill "$fpid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
free_port() {
  deno eval --quiet 'const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    console.log((l.addr as Deno.NetAddr).port); l.close();'
}

# --- 1. backfill -------------------------------------------------------------------------------
deno eval --quiet '
const base = Date.UTC(2026, 0, 1, 0, 10); // 00:10 UTC, inside the 00:00-02:00 block range
// Seconds with millisecond precision that promtool parses back to exactly `ms` (truncating or
// rounding): add a microsecond when the decimal is not exact.
const ts = (ms) => {
  const s = `${Math.floor(ms / 1000)}.${String(ms % 1000).padStart(3, "0")}`;
  const back = Number(s) * 1000;
  return Math.trunc(back) === ms && Math.round(back) === ms ? s : `${s}001`;
};
const out = [];
out.push("# TYPE promcase_requests counter");
for (const [i, code] of ["200", "500"].entries()) {
  for (let k = 0; k < 360; k++) {
    out.push(`promcase_requests_total{code="${code}",handler="/api/v${i}"} ${k * (i + 3) + (k % 7)} ${ts(base + k * 15000)}`);
  }
}
out.push("# TYPE promcase_temperature_celsius gauge");
for (let k = 0; k < 360; k++) {
  const v = Math.round((20 + 5 * Math.sin(k / 30)) * 1000) / 1000;
  out.push(`promcase_temperature_celsius{room="café ☕"} ${v} ${ts(base + k * 15000 + (k % 5) * 37)}`);
}
out.push("# TYPE promcase_edge gauge");
const edges = ["NaN", "+Inf", "-Inf", "-0.0", "0", "5e-324", "2.2250738585072014e-308",
  "1.7976931348623157e+308", "-1.7976931348623157e+308", "0.1", "1e-05", "0.0001", "123456",
  "1234567", "1e+21", "-3.5", "1", "1", "1", "42"];
edges.forEach((v, k) => out.push(`promcase_edge{kind="values"} ${v} ${ts(base + k * 60000)}`));
out.push("# TYPE promcase_labels gauge");
const esc = String.raw`C:\\dir\\\"quoted\"\nnext	tab`;
for (let k = 0; k < 10; k++) {
  out.push(`promcase_labels{emoji="🚀☕",path="${esc}",z_last="ü"} ${k} ${ts(base + k * 1000)}`);
}
// Timestamps walking the delta-of-delta bucket edges of the XOR encoding.
out.push("# TYPE promcase_dod gauge");
const walk = (name, delta, dods) => {
  let t = base + 7;
  out.push(`promcase_dod{walk="${name}"} 0 ${ts(t)}`);
  t += delta;
  out.push(`promcase_dod{walk="${name}"} 1 ${ts(t)}`);
  dods.forEach((dod, i) => {
    delta += dod;
    t += delta;
    out.push(`promcase_dod{walk="${name}"} ${i + 2} ${ts(t)}`);
  });
};
walk("small", 70000, [65536, -65536, 65537, -65537, -65535, 65535, 8192, -8192, 8193, -8193,
  -8191, 8191, 1, -1, 0, 0]);
walk("large", 530000, [524288, -524288, 524289, -524289, -524287, 524287]);
out.push("# EOF", "");
await Deno.stdout.write(new TextEncoder().encode(out.join("\n")));
' >"$work/om.txt"
mkdir -p "$work/backfill"
"$bin/promtool" tsdb create-blocks-from openmetrics "$work/om.txt" "$work/backfill"
n=$(find "$work/backfill" -mindepth 1 -maxdepth 1 -type d | wc -l)
[ "$n" = 1 ] || { echo "generate.sh: backfill made $n blocks, want 1" >&2; exit 1; }

# --- 1b. tombstones: Prometheus' delete API on a copy of the backfill block ---------------------
tdata=$work/tdata
mkdir -p "$tdata"
cp -a "$work/backfill"/. "$tdata/"
tport=$(free_port)
printf 'scrape_configs: []\n' >"$work/empty.yml"
"$bin/prometheus" --config.file="$work/empty.yml" --storage.tsdb.path="$tdata" \
  --web.listen-address="127.0.0.1:$tport" --web.enable-admin-api >"$work/tombstones.log" 2>&1 &
pid=$!
until curl -fsS "http://127.0.0.1:$tport/-/ready" >/dev/null 2>&1; do
  kill -0 "$pid" 2>/dev/null || { tail -20 "$work/tombstones.log" >&2; exit 1; }
  sleep 0.5
done
delete() { # matcher [start end] (seconds)
  local args=(--data-urlencode "match[]=$1")
  [ $# -lt 3 ] || args+=(--data-urlencode "start=$2" --data-urlencode "end=$3")
  curl -fsS -X POST "http://127.0.0.1:$tport/api/v1/admin/tsdb/delete_series" "${args[@]}"
}
delete 'promcase_requests_total{code="500"}' 1767227100 1767228900.5  # 00:25 .. 00:55:00.500
delete 'promcase_temperature_celsius' 1767226500 1767226800          # two intervals
delete 'promcase_temperature_celsius' 1767230000.25 1767230100
delete 'promcase_edge'                                               # the whole series
kill -TERM "$pid"
wait "$pid" || { tail -20 "$work/tombstones.log" >&2; exit 1; }
pid=

# --- 2. native histograms from a self-scraping Prometheus ------------------------------------
data=$work/data
mkdir -p "$data"
port=$(free_port)
fport=$(free_port)
# A fake target whose series come and go, so that the scrape loop writes stale markers into the
# middle of chunks: promcase_flappy is missing from 15 s to 30 s, the classic histogram
# promcase_latency_seconds (stored as a custom-bucket histogram) disappears at 20 s.
cat >"$work/fake.ts" <<'EOF'
const port = Number(Deno.args[0]);
const t0 = Date.now();
Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, () => {
  const s = Math.floor((Date.now() - t0) / 1000);
  const out: string[] = [];
  if (s < 15 || s >= 30) out.push("# TYPE promcase_flappy gauge", `promcase_flappy{phase="x"} ${s}`);
  if (s < 20) {
    const n = s * 3;
    out.push(
      "# TYPE promcase_latency_seconds histogram",
      `promcase_latency_seconds_bucket{le="0.1"} ${s}`,
      `promcase_latency_seconds_bucket{le="0.25"} ${2 * s}`,
      `promcase_latency_seconds_bucket{le="+Inf"} ${n}`,
      `promcase_latency_seconds_sum ${n * 0.125}`,
      `promcase_latency_seconds_count ${n}`,
    );
  }
  out.push("");
  return new Response(out.join("\n"), {
    headers: { "content-type": "text/plain; version=0.0.4" },
  });
});
EOF
write_config() { # with_rule: 1 = with the float histogram recording rule
  cat >"$work/rules.yml" <<EOF
groups:
  - name: promcase
    interval: 1s
    rules:
      - record: promcase:up:sum
        expr: sum(up)
EOF
  if [ "$1" = 1 ]; then
    cat >>"$work/rules.yml" <<EOF
      - record: promcase:http_duration:rate
        expr: sum(rate(prometheus_http_request_duration_seconds{job="native"}[5s]))
EOF
  fi
  cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: ["$work/rules.yml"]
scrape_configs:
  - job_name: native
    static_configs:
      - targets: ["127.0.0.1:$port"]
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: "prometheus_http_request_duration_seconds|prometheus_build_info|go_goroutines"
        action: keep
  - job_name: nhcb
    scrape_protocols: [PrometheusText0.0.4]
    convert_classic_histograms_to_nhcb: true
    static_configs:
      - targets: ["127.0.0.1:$port"]
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: "prometheus_http_response_size_bytes.*|process_cpu_seconds_total"
        action: keep
  - job_name: flappy
    scrape_protocols: [PrometheusText0.0.4]
    convert_classic_histograms_to_nhcb: true
    static_configs:
      - targets: ["127.0.0.1:$fport"]
EOF
}
write_config 1
# Start just after a minute boundary, so that the first 1-minute block holds nearly a minute.
sleep $(( (62 - $(date +%s) % 60) % 60 ))
deno run --quiet --allow-net "$work/fake.ts" "$fport" &
fpid=$!
"$bin/prometheus" --config.file="$work/prometheus.yml" --storage.tsdb.path="$data" \
  --web.listen-address="127.0.0.1:$port" --enable-feature=native-histograms \
  --storage.tsdb.min-block-duration=1m --storage.tsdb.max-block-duration=1m \
  >"$work/prometheus.log" 2>&1 &
pid=$!
echo "prometheus 3.5.3 (pid $pid) on 127.0.0.1:$port, data in $data" >&2
# Dropping the rule makes the rule manager write a stale float histogram sample.
sleep 25
write_config 0
kill -HUP "$pid"
start=$SECONDS
until compgen -G "$data/*/meta.json" >/dev/null; do
  kill -0 "$pid" 2>/dev/null || { tail -20 "$work/prometheus.log" >&2; echo "generate.sh: prometheus died" >&2; exit 1; }
  [ $((SECONDS - start)) -lt 300 ] || { tail -20 "$work/prometheus.log" >&2; echo "generate.sh: no block after 300 s" >&2; exit 1; }
  sleep 2
done
kill -TERM "$pid"
wait "$pid" || true
pid=
kill "$fpid"
wait "$fpid" 2>/dev/null || true
fpid=
first=$(cd "$data" && ls -d 01*/ | sort | head -1)

# --- install -----------------------------------------------------------------------------------
rm -rf "$here/backfill" "$here/native" "$here/tombstoned"
mkdir -p "$here/backfill" "$here/native" "$here/tombstoned"
cp -a "$work/backfill"/. "$here/backfill/"
(cd "$tdata" && cp -a 01*/ "$here/tombstoned/")
cp -a "$data/${first%/}" "$here/native/"
"$bin/promtool" tsdb list "$here/backfill"
"$bin/promtool" tsdb list "$here/native"
"$bin/promtool" tsdb list "$here/tombstoned"
du -sh "$here"
