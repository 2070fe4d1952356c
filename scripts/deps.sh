#!/usr/bin/env bash
# Installs what building and testing licvault needs, when it is missing (Debian/Ubuntu):
#   - curl, jq and zbar-tools (zbarimg) for the README walk-throughs;
#   - librocksdb-dev (linked; see ARCHITECTURE.md "Storage engine"), libclang-dev and clang for
#     the rocksdb crate's bindgen;
#   - with --python: python3 with venv, and a virtualenv holding pycose (the COSE interop test),
#     prometheus_client (the reference parser for /metrics), schemathesis 4.x (the OpenAPI
#     fuzzer of scripts/fuzz_api.sh) and selenium (the page test); and Debian's chromium with
#     chromium-driver (the page test in a real browser) and zbar-tools (zbarimg, a second QR
#     decoder independent of the encoder); and Go with golang.org/x/mod (Debian's golang-go and
#     golang-golang-x-mod-dev: sumdb/note and sumdb/tlog read our checkpoints, tiles and proofs
#     in tests/go/tlogcheck.go); and Debian's postgresql-15 (initdb, pg_ctl, pg_basebackup: the
#     national mirror's test starts a primary and a streaming replica in a temp directory);
#   - with --plot: fonts-dejavu-core, the font of `make bench-scale`'s plot.
set -euo pipefail
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
missing=()
for p in librocksdb-dev libclang-dev clang pkg-config curl jq zbar-tools; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${1:-}" = "--python" ]; then
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3 python3-venv)
  for p in chromium chromium-driver golang-go golang-golang-x-mod-dev postgresql-15; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
fi
if [ "${1:-}" = "--plot" ]; then
  dpkg -s fonts-dejavu-core >/dev/null 2>&1 || missing+=(fonts-dejavu-core)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi
if [ "${1:-}" = "--python" ]; then
  venv="${LICVAULT_VENV:?}"
  check='import pycose, cryptography, prometheus_client, selenium
from importlib.metadata import version as v
assert v("cbor2") < "6" and v("schemathesis").startswith("4.")'
  if ! "$venv/bin/python" -c "$check" >/dev/null 2>&1; then
    echo "deps: creating $venv with pycose, prometheus_client, schemathesis and selenium"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q pycose==1.1.0 "cbor2<6" cryptography prometheus_client "schemathesis==4.32.5" \
      "selenium==4.51.0"
  fi
fi
