#!/usr/bin/env python3
"""Check licvault's trust list and a status list token with independent code (pycose,
cryptography, cbor2, zlib), using nothing from licvault.

Usage: check_status.py TRUST.json LIST.cwt URI INDEX
  TRUST.json  the answer of GET /v1/trust
  LIST.cwt    the bytes of GET /v1/status-lists/{n}
  URI         the status_list.uri the licence names
  INDEX       the status_list.idx the licence names

Checks: the trust digest recomputes (spec/formats.md §9: SHA-256 over length-prefixed parts:
"licvault-trust-v1", the root DER, the department DERs by kid, the log verifier key, the platform
keys by kid); the list is a COSE_Sign1 whose protected header has typ
"application/statuslist+cwt" and the kid of a platform key in the trust list, and whose Ed25519
signature verifies under it; its sub (2) is URI (draft-ietf-oauth-status-list-18 §8.3); its
status_list (65533) has bits 2 and a zlib lst. Prints the status at INDEX (0 valid, 1 invalid,
2 suspended, 3 superseded). Exit 0 when all hold.
"""
import base64
import hashlib
import json
import struct
import sys
import zlib

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pycose.headers import KID, Algorithm
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import Sign1Message

TYP = 16


def der(pem: str) -> bytes:
    return x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)


def trust_digest(trust: dict) -> str:
    parts = [b"licvault-trust-v1", der(trust["root"]["certificate"])]
    for d in sorted(trust["departments"], key=lambda d: bytes.fromhex(d["kid"])):
        parts.append(der(d["certificate"]))
    parts.append(trust["log"]["verifier_key"].encode())
    for k in sorted(trust["platform_keys"], key=lambda k: bytes.fromhex(k["kid"])):
        parts.append(base64.b64decode(k["public_key"]))
    return hashlib.sha256(b"".join(struct.pack(">I", len(p)) + p for p in parts)).hexdigest()


def main(trust_path: str, list_path: str, uri: str, index: str) -> int:
    trust = json.load(open(trust_path))
    if trust_digest(trust) != trust["digest"]:
        print("the trust digest does not recompute", file=sys.stderr)
        return 1
    print(f"trust digest OK: {trust['digest']}")
    msg = Sign1Message.decode(open(list_path, "rb").read())
    if msg.phdr.get(TYP) != "application/statuslist+cwt":
        print(f"typ is {msg.phdr.get(TYP)!r}", file=sys.stderr)
        return 1
    alg = msg.phdr.get(Algorithm)
    if getattr(alg, "identifier", alg) != -8:
        print(f"unexpected alg {alg}", file=sys.stderr)
        return 1
    kid = msg.phdr.get(KID)
    keys = [k for k in trust["platform_keys"] if bytes.fromhex(k["kid"]) == kid]
    if not keys:
        print("no platform key in the trust list has this kid", file=sys.stderr)
        return 1
    msg.key = OKPKey(crv=Ed25519, x=base64.b64decode(keys[0]["public_key"]))
    if not msg.verify_signature():
        print("signature does not verify", file=sys.stderr)
        return 1
    claims = cbor2.loads(msg.payload)
    if claims[2] != uri:
        print(f"sub {claims[2]} is not {uri}", file=sys.stderr)
        return 1
    status_list = claims[65533]
    if status_list["bits"] != 2:
        print("not a 2-bit list", file=sys.stderr)
        return 1
    lst = zlib.decompress(status_list["lst"])
    i = int(index)
    status = (lst[i * 2 // 8] >> ((i % 4) * 2)) & 0b11
    print(f"status {status} at index {i} of {len(lst) * 4} entries, as of iat {claims[6]}, ttl {claims[65534]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
