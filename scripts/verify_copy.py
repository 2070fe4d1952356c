#!/usr/bin/env python3
"""Verify a licvault annotated copy (加注件) with an independent COSE implementation.

Usage: verify_copy.py COPY ANNOTATION_KEY.pem DEPARTMENT_CERT.pem
  COPY              file with the annotated copy's COSE_Sign1 bytes, or their base64 text
                    ("document" of POST /v1/licences/{id}/annotated-copies).
  ANNOTATION_KEY    the platform's annotation key, public or private PEM (keys/annotation.key.pem).
  DEPARTMENT_CERT   the certificate of the department that issued the original.

Checks, using nothing from licvault (pycose, cbor2, cryptography): the copy's kid is the first 8
bytes of SHA-256 of the raw annotation public key; its Ed25519 signature verifies; its claims carry
the annotation (-65538) with the original document whole, whose SHA-256 is orig_sha256; exp is
after iat; and the original itself verifies under the department certificate (verify_cose.py's
checks). Exit 0 when all hold.
"""
import base64
import hashlib
import os
import sys
import tempfile

import cbor2
from cryptography.hazmat.primitives import serialization
from pycose.headers import KID
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import Sign1Message

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import verify_cose  # noqa: E402


def public_raw(pem: bytes) -> bytes:
    try:
        key = serialization.load_pem_private_key(pem, password=None).public_key()
    except ValueError:
        key = serialization.load_pem_public_key(pem)
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def main(copy_path: str, key_path: str, cert_path: str) -> int:
    raw = open(copy_path, "rb").read()
    if raw[:1] != b"\xd2":
        raw = base64.b64decode(raw.strip())
    public = public_raw(open(key_path, "rb").read())
    msg = Sign1Message.decode(raw)
    if msg.phdr.get(KID) != hashlib.sha256(public).digest()[:8]:
        print("kid is not the annotation key's", file=sys.stderr)
        return 1
    msg.key = OKPKey(crv=Ed25519, x=public)
    if not msg.verify_signature():
        print("annotation signature does not verify", file=sys.stderr)
        return 1
    claims = cbor2.loads(msg.payload)
    a = claims[-65538]
    if hashlib.sha256(a["orig_doc"]).digest() != a["orig_sha256"]:
        print("the original inside does not match orig_sha256", file=sys.stderr)
        return 1
    if not claims[4] > claims[6]:
        print("exp is not after iat", file=sys.stderr)
        return 1
    with tempfile.NamedTemporaryFile(suffix=".cose") as f:
        f.write(a["orig_doc"])
        f.flush()
        if verify_cose.main(f.name, cert_path) != 0:
            return 1
    print(f"OK copy: {a['orig']} for {a['purpose']} by {a['maker']['uscc']} until {claims[4]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3]))
