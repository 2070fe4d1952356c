#!/usr/bin/env bash
# make demo-federation (issue 10): three levels of platforms on loopback, each node with its own
# data directory, keys and departments — a national node, two provinces (广东, 浙江) and three
# cities (深圳 and 广州 in 广东, 杭州 in 浙江). The national root certifies the provinces, each
# province cross-certifies its cities' roots; the provinces mirror their cities' logs and the
# national node mirrors all three; 深圳 asks 广州 and 杭州 in a one-number lookup. Each city
# issues; then a 杭州 licence is verified at the national node and in 深圳, a 深圳 clerk finds a
# company's licences in both provinces, and a revocation in 杭州 reaches the national mirror.
#
# usage: scripts/demo_federation.sh BIN   (DEMO_DIR=DIR builds the nodes there and keeps them;
# DEMO_PORT is the first of six ports, default 18400). The nodes stop when the script ends.
set -euo pipefail
BIN=$(realpath "${1:?usage: demo_federation.sh BIN}")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${DEMO_DIR:-$(mktemp -d /tmp/licvault-federation.XXXXXX)}
PORT=${DEMO_PORT:-18400}
PIDS=()
stop() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${DEMO_DIR:-}" ] || rm -rf "$WORK"
}
trap stop EXIT
say() { printf '\n== %s\n' "$*"; }

# name, area code, name of the place, province (for cities)
NODES=(nation:110000:国家: gd:440000:广东省: zj:330000:浙江省: sz:440300:深圳市:gd gz:440100:广州市:gd hz:330100:杭州市:zj)
declare -A AREA PLACE PROVINCE URL
i=0
for spec in "${NODES[@]}"; do
  IFS=: read -r n area place prov <<<"$spec"
  AREA[$n]=$area PLACE[$n]=$place PROVINCE[$n]=$prov URL[$n]=http://127.0.0.1:$((PORT + i))
  i=$((i + 1))
done
CITIES=(sz gz hz)

say "keys, departments and the first administrator of each node, in $WORK"
for n in nation gd zj "${CITIES[@]}"; do
  d=$WORK/$n
  python3 "$ROOT/scripts/demo_fixtures.py" "${AREA[$n]}" "${PLACE[$n]}" "licvault.$n.example/log" "$d/fixtures"
  "$BIN" keys init "$d/keys" --departments "$d/fixtures/departments.json" --root-dir "$d/root-ca" >/dev/null
  "$BIN" clients bootstrap --data "$d/data" --keys "$d/keys" --fixtures "$d/fixtures" 2>/dev/null | tail -1 >"$d/admin.token"
  echo "  $n: ${PLACE[$n]}电子证照库平台, log licvault.$n.example/log"
done

say "the federation: 国家 → 广东省, 浙江省 → each city's own root (cross-certified), and their CRLs"
CA=$WORK/federation-cas
"$BIN" federation ca "$CA/nation" --name 国家政务服务平台 >/dev/null
"$BIN" federation ca "$CA/gd" --name 广东省政务服务平台 --issuer "$CA/nation" >/dev/null
"$BIN" federation ca "$CA/zj" --name 浙江省政务服务平台 --issuer "$CA/nation" >/dev/null
FED=$WORK/federation
mkdir -p "$FED/cas" "$FED/crls"
cp "$CA/nation/ca.crt.pem" "$FED/anchor.crt.pem"
cp "$CA/gd/ca.crt.pem" "$FED/cas/gd.crt.pem"
cp "$CA/zj/ca.crt.pem" "$FED/cas/zj.crt.pem"
for c in "${CITIES[@]}"; do
  "$BIN" federation cross-certify "$WORK/$c/keys/root.crt.pem" --issuer "$CA/${PROVINCE[$c]}" --out "$FED/cas/$c.crt.pem" >/dev/null
done
for ca in nation gd zj; do
  "$BIN" federation crl --issuer "$CA/$ca" --number 1 --out "$FED/crls/$ca.crl.pem" >/dev/null
done
for n in nation gd zj "${CITIES[@]}"; do
  mkdir -p "$WORK/$n/keys/federation/peers"
  cp -r "$FED/anchor.crt.pem" "$FED/cas" "$FED/crls" "$WORK/$n/keys/federation/"
  for c in "${CITIES[@]}"; do
    [ "$c" = "$n" ] && continue
    for cert in "$WORK/$c"/keys/departments/*.crt.pem; do cp "$cert" "$WORK/$n/keys/federation/peers/$c-$(basename "$cert")"; done
  done
done

start() {
  local n=$1; shift
  local d=$WORK/$n
  "$BIN" serve --listen "${URL[$n]#http://}" --data "$d/data" --keys "$d/keys" --fixtures "$d/fixtures" "$@" \
    >"$d/serve.out" 2>"$d/serve.log" &
  PIDS+=($!)
  for _ in $(seq 100); do curl -fs "${URL[$n]}/healthz" >/dev/null && return; sleep 0.1; done
  echo "$n did not start: $(tail -3 "$d/serve.log")" >&2
  exit 1
}
# POST as an admin of node $1: path, body.
admin() { curl -fsS -X POST "${URL[$1]}$2" -H "Authorization: Bearer $(cat "$WORK/$1/admin.token")" -H 'Content-Type: application/json' -d "$3"; }
dept() { jq -r ".departments[0].uscc" "$WORK/$1/fixtures/departments.json"; }
platform_uscc() { jq -r ".platform.uscc" "$WORK/$1/fixtures/departments.json"; }

say "the cities start; each registers its 市场监督管理局's system and an auditor for the mirrors; 广州 and 杭州 register 深圳's node as a verifier"
register() { # node, client id, role: the token
  admin "$1" /v1/admin/clients "{\"id\":\"$2\",\"name\":\"$2\",\"role\":\"$3\"$4}" | jq -r .token
}
for c in gz hz sz; do
  if [ "$c" = sz ]; then start sz --peers "$WORK/sz/peers.json"; else start "$c"; fi
  register "$c" scjg issuer ",\"uscc\":\"$(dept "$c")\"" >"$WORK/$c/issuer.token"
  register "$c" mirrors auditor "" >"$WORK/$c/auditor.token"
  if [ "$c" = sz ]; then
    register sz counter verifier ",\"uscc\":\"$(platform_uscc sz)\",\"types\":[\"*\"]" >"$WORK/sz/verifier.token"
  else
    register "$c" sz-node verifier ",\"uscc\":\"$(platform_uscc sz)\",\"types\":[\"*\"]" >"$WORK/sz/peer-$c.token"
  fi
  if [ "$c" = hz ]; then # 深圳's peers, now that both have registered it
    jq -n --arg gz "${URL[gz]}" --arg hz "${URL[hz]}" --arg gzt "$WORK/sz/peer-gz.token" --arg hzt "$WORK/sz/peer-hz.token" \
      '{peers: [{name: "gz", url: $gz, verifier_token_file: $gzt}, {name: "hz", url: $hz, verifier_token_file: $hzt}]}' \
      >"$WORK/sz/peers.json"
  fi
  echo "  ${PLACE[$c]}: ${URL[$c]}"
done

source_of() { # a mirror configuration's entry for city $1
  jq -n --arg name "$1" --arg url "${URL[$1]}" --arg key "$(curl -fsS "${URL[$1]}/v1/trust" | jq -r .log.verifier_key)" \
    --arg token "$WORK/$1/auditor.token" --arg root "$WORK/$1/keys/root.crt.pem" \
    '{name: $name, url: $url, log_key: $key, token_file: $token, root: $root}'
}
mirrors() { # node, cities
  local n=$1; shift
  local sources; sources=$(for c in "$@"; do source_of "$c"; done | jq -s .)
  jq -n --arg data "$WORK/$n/mirrors" --argjson sources "$sources" '{data: $data, poll_ms: 500, sources: $sources}' >"$WORK/$n/mirrors.json"
}
mirrors gd sz gz
mirrors zj hz
mirrors nation sz gz hz
say "the provinces and the nation start, mirroring their cities' logs"
start gd --mirrors "$WORK/gd/mirrors.json"
start zj --mirrors "$WORK/zj/mirrors.json"
start nation --mirrors "$WORK/nation/mirrors.json"
for n in gd zj nation; do echo "  ${PLACE[$n]}: ${URL[$n]}, mirrors $(jq -r '[.sources[].name] | join(", ")' "$WORK/$n/mirrors.json")"; done

COMPANY=91440300MA5E000256
issue() { # city, holder: prints the issuance answer
  local body
  body=$(jq --arg h "$2" --arg d "$(jq -r '.departments[0].name' "$WORK/$1/fixtures/departments.json")" \
    '.holder.id = $h | .fields["统一社会信用代码"] = $h | .fields["登记机关"] = $d'  \
    "$ROOT/fixtures/examples/issue-business-licence.json")
  curl -fsS -X POST "${URL[$1]}/v1/licences" -H "Authorization: Bearer $(cat "$WORK/$1/issuer.token")" \
    -H 'Content-Type: application/json' -d "$body"
}
say "each city issues a 营业执照 to one company with branches in three cities ($COMPANY)"
for c in "${CITIES[@]}"; do issue "$c" "$COMPANY" >"$WORK/$c.issued"; done
for c in "${CITIES[@]}"; do echo "  ${PLACE[$c]}: $(jq -r '.licence.id // .code' "$WORK/$c.issued")"; done

wait_mirrored() { # node, source, size
  for _ in $(seq 100); do
    [ "$(curl -fsS "${URL[$1]}/v1/mirrors" | jq --arg s "$2" '.mirrors[] | select(.name == $s) | .size')" -ge "$3" ] && return
    sleep 0.2
  done
  echo "the mirror of $2 at $1 did not catch up" >&2; exit 1
}
size_of() { curl -fsS "${URL[$1]}/v1/log/checkpoint" | sed -n 2p; }
wait_mirrored nation hz "$(size_of hz)"

verify() { # node, document: the verdict in one line
  curl -fsS -X POST "${URL[$1]}/v1/verify" -H 'Content-Type: application/json' -d "{\"payload\":\"$2\"}" \
    | jq -r '"  \(.verdict) (valid: \(.valid)) — \(.status_words)\n  platform: \(.elsewhere.federation_path | join(" → "))\n  mirror: \(.elsewhere.mirror // "none" | if type == "object" then "\(.source), status as of its size \(.size)" else . end)"'
}
HZ_DOC=$(jq -r .document "$WORK/hz.issued")
say "杭州's licence, presented at the national node (which mirrors 杭州's log)"
verify nation "$HZ_DOC"
say "the same licence presented in 深圳 (the federation vouches for its seal; 深圳 mirrors no log of 杭州)"
verify sz "$HZ_DOC"

say "a clerk in 深圳 looks the company up: 深圳's own licence, and those of 广州 and 杭州 (each records the use)"
curl -fsS -X POST "${URL[sz]}/v1/holders/licences" -H "Authorization: Bearer $(cat "$WORK/sz/verifier.token")" \
  -H 'Content-Type: application/json' \
  -d "{\"holder\":{\"type\":\"001\",\"id\":\"$COMPANY\"},\"use_reason\":\"跨省通办：食品经营许可\",\"officer\":{\"name\":\"王五\",\"staff_no\":\"A0042\"}}" \
  | jq -r '"  深圳: \(.licences | map(.licence.issuer.name + " " + .licence.type_name + " " + .status) | join(", "))",
           (.other_platforms[] | "  \(.platform): \(if .answer then (.answer.licences | map(.licence.issuer.name + " " + .licence.type_name + " " + .status) | join(", ")) + " (its log at \(.answer.usage.log_size))" else .error end)")'

say "杭州 revokes its licence; the national mirror follows"
HZ_ID=$(jq -r .licence.id "$WORK/hz.issued")
curl -fsS -X POST "${URL[hz]}/v1/licences/$HZ_ID/revoke" -H "Authorization: Bearer $(cat "$WORK/hz/issuer.token")" \
  -H 'Content-Type: application/json' -d '{"reason":"以欺骗手段取得登记"}' | jq -r '"  \(.status)"'
wait_mirrored nation hz "$(size_of hz)"
verify nation "$HZ_DOC"

say "what the national node mirrors"
curl -fsS "${URL[nation]}/v1/mirrors" | jq -r '.mirrors[] | "  \(.name): \(.size) leaves of \(.origin), \(.state), lag \(.lag_seconds) s"'
echo
[ -n "${DEMO_DIR:-}" ] && echo "the nodes' directories are kept in $DEMO_DIR" || echo "(DEMO_DIR=DIR keeps the nodes' directories)"
