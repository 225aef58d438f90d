#!/usr/bin/env bash
# Rebuilds the documented example release in firmware-manifests/example/:
# manifest.json (canonical, what signers sign), sbom.cdx.json and
# provenance.intoto.json, from template.json and two small artifacts this
# script generates deterministically. The build is reproducible: running it
# again gives the same bytes (test/release/example.test.ts checks that the
# committed files are exactly what this script makes).
#
#   scripts/build-example-release.sh [OUT_DIR [BUNDLE]]
#
# OUT_DIR defaults to firmware-manifests/example. No key is involved: the
# bundle is built unsigned, and kept only when BUNDLE names where to put it
# (never in the repository). Sign your copy as the example README shows.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(realpath -m "${1:-$ROOT/firmware-manifests/example}")
BUNDLE=${2:+$(realpath -m "$2")}
cd "$ROOT"
TEMPLATE=firmware-manifests/example/template.json
[ -f dist/cli/main.js ] || npm run build
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# The example artifacts: 2048 numbered lines (79872 bytes), and a short config file.
awk 'BEGIN { for (i = 0; i < 2048; i++) printf "glassbox example root file system %04d\n", i }' > "$WORK/rootfs.img"
printf 'retention_days = 30\ncameras_max = 8\ntelemetry = mqtts://198.51.100.10:8883\n' > "$WORK/recorder.conf"

node dist/cli/main.js release build \
  --template "$TEMPLATE" \
  --artifact rootfs.img=rootfs:"$WORK/rootfs.img" \
  --artifact recorder.conf=config:"$WORK/recorder.conf" \
  --now 2025-03-01T11:30:00Z \
  --out "$WORK/example.bundle" \
  --keep "$WORK/kept"

mkdir -p "$OUT"
cp "$WORK/kept/manifest.json" "$WORK/kept/sbom.cdx.json" "$WORK/kept/provenance.intoto.json" "$OUT/"
[ -z "$BUNDLE" ] || cp "$WORK/example.bundle" "$BUNDLE"
sha256sum "$WORK/rootfs.img" "$WORK/recorder.conf" | sed "s#$WORK/##"
echo "example release written to $OUT"
