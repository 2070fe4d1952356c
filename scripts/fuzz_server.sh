#!/usr/bin/env bash
# Starts a throw-away licvault (the debug build, demo keys and clients, a temp data directory) on
# a free local port, runs scripts/fuzz_api.sh against it (schemathesis, seed 1, 25 examples per
# operation), stops it and removes its data. `make test` runs this; any failure fails the run.
#
#   scripts/fuzz_server.sh BINARY
set -euo pipefail
bin="${1:?usage: $0 BINARY}"
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
cp -r "$root/keys" "$work/keys"
chmod 600 "$work"/keys/*.key.pem "$work"/keys/root-ca/*.key.pem "$work"/keys/departments/*.key.pem "$work/keys/commitment.key"
RUST_LOG=warn "$bin" serve --demo --listen 127.0.0.1:0 --data "$work/data" --keys "$work/keys" \
  --fixtures "$root/fixtures" >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 1 100); do
  addr="$(sed -n 's/^licvault listening on //p' "$work/out" | head -1)"
  [ -n "$addr" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/err" >&2; exit 2; }
  sleep 0.1
done
[ -n "$addr" ] || { echo "fuzz_server: the server did not start" >&2; cat "$work/err" >&2; exit 2; }
shift
"$root/scripts/fuzz_api.sh" "http://$addr" dev-token-admin-0001 dev-token-scjg-issuer-0001 \
  dev-token-zwfw-verifier-0001 dev-token-app-holder-0001 "$@"
if grep -q "panicked" "$work/err"; then
  echo "fuzz_server: the server panicked:" >&2
  grep -A5 panicked "$work/err" >&2
  exit 1
fi
