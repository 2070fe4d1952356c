#!/usr/bin/env python3
"""Verify a licvault licence with an independent COSE implementation (pycose + cryptography).

Usage: verify_cose.py DOCUMENT CERT.pem
  DOCUMENT  file with the COSE_Sign1 bytes (tagged, CBOR tag 18) as returned base64-decoded by
            POST /v1/licences ("document"), the base64 text itself, or a QR payload: LV1: (Base45
            of zlib) or LV2: (Base45 of zlib with the preset dictionary spec/qr-dictionary-1.txt),
            inflated here by CPython's zlib, with Base45 (RFC 9285) decoded by this script.
  CERT.pem  the issuing department's certificate from keys/departments/<USCC>.crt.pem.

Checks, using nothing from licvault: the kid in the protected header is the first 8 bytes of
SHA-256 of the certificate's DER; alg is EdDSA (-8) or Ed25519 (-19); the Ed25519 signature verifies
under the certificate's key; the payload's iss claim is the certificate's USCC. Prints the claims.
Exit 0 when all hold.
"""
import base64
import hashlib
import os
import sys
import zlib

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ObjectIdentifier
from pycose.headers import KID, Algorithm
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import Sign1Message

ORGANIZATION_IDENTIFIER = ObjectIdentifier("2.5.4.97")


BASE45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
DICTIONARY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "spec", "qr-dictionary-1.txt")


def base45_decode(text: str) -> bytes:
    """RFC 9285 section 4.2."""
    out = bytearray()
    for i in range(0, len(text), 3):
        chunk = [BASE45.index(c) for c in text[i : i + 3]]
        n = sum(v * 45**k for k, v in enumerate(chunk))
        out += n.to_bytes(2 if len(chunk) == 3 else 1, "big")
    return bytes(out)


def read_document(path: str) -> bytes:
    """COSE_Sign1 bytes from a file holding them, their base64 text, or a QR payload."""
    raw = open(path, "rb").read()
    if raw[:1] == b"\xd2":
        return raw
    text = raw.decode().strip()
    if text.startswith("LV1:"):
        return zlib.decompress(base45_decode(text[4:]))
    if text.startswith("LV2:"):
        stream = base45_decode(text[4:])
        # RFC 1950: an LV2: stream names a dictionary (FDICT) in its header.
        if len(stream) < 6 or not stream[1] & 0x20:
            raise ValueError("an LV2: payload whose zlib stream names no dictionary")
        inflate = zlib.decompressobj(zdict=open(DICTIONARY, "rb").read())
        doc = inflate.decompress(stream) + inflate.flush()
        if not inflate.eof or inflate.unused_data:
            raise ValueError("a truncated LV2: stream, or bytes after its end")
        return doc
    return base64.b64decode(text)


def verified(raw: bytes, public: bytes, kid: bytes, whose: str):
    """The COSE_Sign1 message if its alg is EdDSA/Ed25519, its kid is `kid` and its signature
    verifies under the raw Ed25519 key `public`; else None, with the reason on stderr."""
    msg = Sign1Message.decode(raw)
    alg = msg.phdr.get(Algorithm)
    if getattr(alg, "identifier", alg) not in (-8, -19):
        print(f"unexpected alg {alg}", file=sys.stderr)
        return None
    if msg.phdr.get(KID) != kid:
        print(f"kid does not match the {whose}", file=sys.stderr)
        return None
    msg.key = OKPKey(crv=Ed25519, x=public)
    if not msg.verify_signature():
        print("signature does not verify", file=sys.stderr)
        return None
    return msg


def main(doc_path: str, cert_path: str) -> int:
    raw = read_document(doc_path)
    cert = x509.load_pem_x509_certificate(open(cert_path, "rb").read())
    der = cert.public_bytes(serialization.Encoding.DER)
    public = cert.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    uscc = cert.subject.get_attributes_for_oid(ORGANIZATION_IDENTIFIER)[0].value

    msg = verified(raw, public, hashlib.sha256(der).digest()[:8], "certificate")
    if msg is None:
        return 1
    claims = cbor2.loads(msg.payload)
    if claims[1] != uscc:
        print(f"iss {claims[1]} is not the certificate's USCC {uscc}", file=sys.stderr)
        return 1
    licence = claims[-65537]
    print(f"OK: {licence['id']} {licence['type_name']} signed by {uscc}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
