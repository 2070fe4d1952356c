#!/usr/bin/env python3
"""Verify a licvault annotated copy (加注件) with an independent COSE implementation.

Usage: verify_copy.py COPY ANNOTATION_KEY.pem
  COPY              file with the annotated copy's COSE_Sign1 bytes, or their base64 text
                    ("document" of POST /v1/licences/{id}/annotated-copies).
  ANNOTATION_KEY    the platform's annotation key, public or private PEM (keys/annotation.key.pem).

Checks, using nothing from licvault (pycose, cbor2, cryptography): the copy's kid is the first 8
bytes of SHA-256 of the raw annotation public key; its Ed25519 signature verifies; its claims carry
the annotation (-65538) naming the original (id, 32-byte orig_sha256) with its face (holder number
masked), the maker and the purpose; exp is after iat. Prints the copy. Exit 0 when all hold.
"""
import hashlib
import os
import re
import sys

import cbor2
from cryptography.hazmat.primitives import serialization

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import verify_cose  # noqa: E402
from verify_cose import read_document  # noqa: E402


def public_raw(pem: bytes) -> bytes:
    try:
        key = serialization.load_pem_private_key(pem, password=None).public_key()
    except ValueError:
        key = serialization.load_pem_public_key(pem)
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def main(copy_path: str, key_path: str) -> int:
    public = public_raw(open(key_path, "rb").read())
    msg = verify_cose.verified(read_document(copy_path), public, hashlib.sha256(public).digest()[:8], "annotation key")
    if msg is None:
        return 1
    claims = cbor2.loads(msg.payload)
    a = claims[-65538]
    if len(a["orig_sha256"]) != 32 or not a["orig"].startswith("1.2.156.3005.2."):
        print("the copy does not name its original", file=sys.stderr)
        return 1
    holder = a["face"]["holder"]
    if holder["type"] == "111" and not re.fullmatch(r"\d{4}\*{10}[\dX]{4}", holder["id"]):
        print("the copy shows a citizen number unmasked", file=sys.stderr)
        return 1
    if not claims[4] > claims[6]:
        print("exp is not after iat", file=sys.stderr)
        return 1
    print(f"OK copy: {a['orig']} ({a['face']['type_name']}) for {a['purpose']} by {a['maker']['uscc']} until {claims[4]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
