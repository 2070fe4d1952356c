#!/usr/bin/env python3
"""Check a presented licvault licence and its salted disclosures with independent code
(pycose + cryptography + cbor2 + hashlib), using nothing from licvault.

Usage: check_disclosures.py DOCUMENT CERT.pem
  DOCUMENT  file with a presented COSE_Sign1 (its unprotected header carries the disclosures
            under label -65537), or its base64 text.
  CERT.pem  the issuing department's certificate (keys/departments/<USCC>.crt.pem).

Checks (spec/formats.md §1.2): the signature as verify_cose.py does; the licence claim is in the
format with disclosures (v = 2); every disclosure is CBOR [salt (16 bytes), value, key] and the
SHA-256 of its bytes, as carried, is one of the digests the signed payload lists under "sd"; no
digest is disclosed twice. Prints one line per disclosed value. Exit 0 when all hold.
"""
import hashlib
import sys

import cbor2

from verify_cose import ORGANIZATION_IDENTIFIER, read_document, verified
from cryptography import x509
from cryptography.hazmat.primitives import serialization

DISCLOSURES = -65537


def main(doc_path: str, cert_path: str) -> int:
    raw = read_document(doc_path)
    cert = x509.load_pem_x509_certificate(open(cert_path, "rb").read())
    der = cert.public_bytes(serialization.Encoding.DER)
    public = cert.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    msg = verified(raw, public, hashlib.sha256(der).digest()[:8], "certificate")
    if msg is None:
        return 1
    claims = cbor2.loads(msg.payload)
    if claims[1] != cert.subject.get_attributes_for_oid(ORGANIZATION_IDENTIFIER)[0].value:
        print("iss is not the certificate's USCC", file=sys.stderr)
        return 1
    licence = claims[-65537]
    if licence.get("v") != 2:
        print("not the format with salted disclosures", file=sys.stderr)
        return 1
    digests = set(licence.get("sd", []))
    seen = set()
    for item in msg.uhdr.get(DISCLOSURES, []):
        digest = hashlib.sha256(item).digest()
        if digest not in digests:
            print(f"disclosure {item.hex()} matches no digest of the document", file=sys.stderr)
            return 1
        if digest in seen:
            print("a disclosure is there twice", file=sys.stderr)
            return 1
        seen.add(digest)
        salt, value, key = cbor2.loads(item)
        if not isinstance(salt, bytes) or len(salt) != 16:
            print("a disclosure's salt is not 16 bytes", file=sys.stderr)
            return 1
        name = {0: "holder.id"}.get(key, f"co_holders[{key - 1}].id") if isinstance(key, int) else key
        print(f"disclosed {name}={value} digest={digest.hex()}")
    print(f"OK: {licence['id']} with {len(seen)} of {len(digests)} values disclosed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
