#!/usr/bin/env bash
# OpenAPI-driven fuzzing of a running licvault: schemathesis 4.x generates requests from
# spec/openapi.yaml (its examples, boundary values, then random valid and invalid data) and checks
# every answer against the spec: never a 5xx, only listed status codes, the listed content type,
# the response schema and the listed response headers.
#
#   scripts/fuzz_api.sh BASE_URL ADMIN_TOKEN ISSUER_TOKEN VERIFIER_TOKEN HOLDER_CHANNEL_TOKEN [extra options]
#   e.g. scripts/fuzz_api.sh http://127.0.0.1:8080 dev-token-admin-0001 dev-token-scjg-issuer-0001 \
#          dev-token-zwfw-verifier-0001 dev-token-app-holder-0001
#
# The spec has four bearer schemes: `admin` (the /v1/admin/* operations and /metrics) gets
# ADMIN_TOKEN, `verifier` (lookups, checks, annotated copies) VERIFIER_TOKEN, `holder_channel`
# (wallet, usage) HOLDER_CHANNEL_TOKEN, `bearer` (every other authenticated operation)
# ISSUER_TOKEN; public operations get no token. Runs are reproducible: seed 1, 25 examples per operation, one worker,
# no example database kept between runs. (`--generation-deterministic` makes schemathesis ignore
# the seed; pass it as an extra option to use it instead.)
#
# Fuzzing writes to the server: it issues, suspends and revokes licences and registers clients,
# so point it at a throw-away data directory, never at production. Schemathesis reuses ids it
# reads from answers, so left alone it would disable or rotate the very clients whose tokens it
# was given; the two client-changing operations are therefore pinned to clients registered here
# for them (`fuzz-disable`, `fuzz-rotate`, role auditor; an existing one is reused).
#
# Needs schemathesis 4.x in $LICVAULT_VENV (default ~/.cache/licvault/venv), curl, and no network
# but BASE_URL; install schemathesis once with:
#   "$LICVAULT_VENV/bin/pip" install 'schemathesis>=4,<5'
# Exits non-zero on any failure. Extra options go to `schemathesis run` after ours, e.g.
# `--max-examples 200`, or `--checks all`, which adds positive_data_acceptance: that one also
# reports the refusals no schema can express (check characters, the catalogue, the log's state;
# see the spec's description).
set -euo pipefail

if [ $# -lt 5 ]; then
  echo "usage: $0 BASE_URL ADMIN_TOKEN ISSUER_TOKEN VERIFIER_TOKEN HOLDER_CHANNEL_TOKEN [schemathesis run options]" >&2
  exit 2
fi
base_url="${1%/}"
export LICVAULT_FUZZ_ADMIN_TOKEN="$2" LICVAULT_FUZZ_ISSUER_TOKEN="$3"
export LICVAULT_FUZZ_VERIFIER_TOKEN="$4" LICVAULT_FUZZ_HOLDER_CHANNEL_TOKEN="$5"
shift 5

root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${LICVAULT_VENV:-$HOME/.cache/licvault/venv}"
st="$venv/bin/schemathesis"
if [ ! -x "$st" ]; then
  echo "fuzz_api: $st not found; install it with: \"$venv/bin/pip\" install 'schemathesis>=4,<5'" >&2
  exit 2
fi
version="$("$st" --version)"
echo "fuzz_api: $version"
case "$version" in
  *"version 4."*) ;;
  *) echo "fuzz_api: schemathesis 4.x is needed" >&2; exit 2 ;;
esac

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Tokens stay off command lines (where `ps` shows them): curl reads the header from a file, and
# schemathesis resolves `${...}` in its configuration from the environment.
(umask 077 && printf 'Authorization: Bearer %s\n' "$LICVAULT_FUZZ_ADMIN_TOKEN" >"$work/admin-header")

# The clients that disable and rotate may change; 409 means one is there from an earlier run.
for id in fuzz-disable fuzz-rotate; do
  code="$(curl -sS -o "$work/answer" -w '%{http_code}' -X POST "$base_url/v1/admin/clients" \
    -H @"$work/admin-header" -H 'Content-Type: application/json' \
    --data "{\"id\": \"$id\", \"name\": \"fuzz_api.sh target\", \"role\": \"auditor\"}")" || {
    echo "fuzz_api: cannot reach $base_url" >&2
    exit 2
  }
  case "$code" in
    201 | 409) ;;
    *) echo "fuzz_api: registering client $id answered $code: $(cat "$work/answer")" >&2; exit 2 ;;
  esac
done

cat >"$work/schemathesis.toml" <<'EOF'
[auth]
# POST /v1/admin/clients answers a token: never sign up on our own.
auto-signup = false

[auth.openapi.admin]
bearer = "${LICVAULT_FUZZ_ADMIN_TOKEN}"

[auth.openapi.bearer]
bearer = "${LICVAULT_FUZZ_ISSUER_TOKEN}"

[auth.openapi.verifier]
bearer = "${LICVAULT_FUZZ_VERIFIER_TOKEN}"

[auth.openapi.holder_channel]
bearer = "${LICVAULT_FUZZ_HOLDER_CHANNEL_TOKEN}"

[[operations]]
include-path = "/v1/admin/clients/{id}/disable"
parameters = { "path.id" = "fuzz-disable" }

[[operations]]
include-path = "/v1/admin/clients/{id}/rotate"
parameters = { "path.id" = "fuzz-rotate" }
EOF

cd "$work"
status=0
"$st" --config-file "$work/schemathesis.toml" run "$root/spec/openapi.yaml" \
  --url "$base_url" \
  --seed 1 \
  --max-examples 25 \
  --workers 1 \
  --phases examples,coverage,fuzzing \
  --generation-database none \
  --request-timeout 30 \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
  "$@" || status=$?
if [ "$status" -eq 1 ]; then
  echo "fuzz_api: FAILED: the server answered something spec/openapi.yaml does not say (see above)" >&2
  exit 1
elif [ "$status" -ne 0 ]; then
  echo "fuzz_api: schemathesis could not run (exit $status)" >&2
  exit "$status"
fi
echo "fuzz_api: every answer conforms to spec/openapi.yaml"
