#!/usr/bin/env bash
# Regenerates the *_pb.ts files from the .proto files beside this script (remote.proto and
# types.proto from Prometheus' prompb/, samples_bits.proto of promcase) with protoc-gen-es.
# Dev time only: the runtime needs nothing but npm:@bufbuild/protobuf, pinned in deno.json at the
# version of the generator below. Needs node/npm and the npm registry.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tools="$(mktemp -d)"
trap 'rm -rf "$tools"' EXIT
npm install --prefix "$tools" --no-audit --no-fund --silent \
  @bufbuild/buf@1.75.0 @bufbuild/protoc-gen-es@2.17.0 >/dev/null
cd "$here"
PATH="$tools/node_modules/.bin:$PATH" buf generate . --template \
  '{"version":"v2","plugins":[{"local":"protoc-gen-es","out":".","opt":["target=ts","import_extension=ts"]}]}'
deno fmt ./*_pb.ts
