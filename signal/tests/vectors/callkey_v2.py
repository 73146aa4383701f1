#!/usr/bin/env python3
"""The version-2 call key, computed independently of the Rust code from the
text of docs/PROTOCOL.md, with Python's `cryptography` package (X25519,
HKDF) and hashlib. Prints one `name hex` line per value.

Inputs are fixed: see INPUTS below (the Rust test uses the same)."""

import hashlib
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand
from cryptography.hazmat.primitives import serialization

CALL_ID = bytes.fromhex("0f8fad5bd9cb469fa16570867728950e")
CALLER, CALLEE = b"alice", b"bob"
CALLER_IK, CALLEE_IK = bytes([0xA1] * 32), bytes([0xB1] * 32)
CALLER_EPH_SECRET, CALLEE_EPH_SECRET = bytes([0x11] * 32), bytes([0x22] * 32)
CALLER_NONCE, CALLEE_NONCE = bytes([0x33] * 32), bytes([0x44] * 32)
CALLER_FP, CALLEE_FP = bytes(range(32)), bytes(range(0xFF, 0xDF, -1))
CALLER_PROFILES = b"AEAD_AES_128_GCM,CRYPTIC_CHACHA20_POLY1305"
CALLEE_PROFILES = b"CRYPTIC_CHACHA20_POLY1305,AEAD_AES_128_GCM"
CODECS = b"opus/48000/2"
EXPORTED = bytes(range(56))  # a stand-in DTLS-SRTP exporter output (AES-128-GCM)


def public(secret):
    key = X25519PrivateKey.from_private_bytes(secret)
    return key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def lp(x):
    return struct.pack(">I", len(x)) + x


caller_pub, callee_pub = public(CALLER_EPH_SECRET), public(CALLEE_EPH_SECRET)
commitment = hashlib.sha256(
    b"cryptic_call_commit_v2" + CALL_ID + caller_pub + CALLER_NONCE + CALLER_FP
).digest()
transcript = b"cryptic_transcript_v2" + b"".join(
    lp(x)
    for x in [
        CALL_ID, CALLER, CALLEE, CALLER_IK, CALLEE_IK, commitment,
        CALLER_NONCE, CALLEE_NONCE, caller_pub, callee_pub, CALLER_FP, CALLEE_FP,
        CALLER_PROFILES, CALLEE_PROFILES, CODECS, CODECS,
    ]
)
shared = X25519PrivateKey.from_private_bytes(CALLER_EPH_SECRET).exchange(
    X25519PrivateKey.from_private_bytes(CALLEE_EPH_SECRET).public_key()
)
k_call = HKDF(
    algorithm=hashes.SHA256(), length=32,
    salt=hashlib.sha256(transcript).digest(), info=b"cryptic_audio_call_v2",
).derive(shared)
sas_bytes = HKDFExpand(algorithm=hashes.SHA256(), length=4, info=b"cryptic_sas_v2").derive(k_call)
n = int.from_bytes(sas_bytes, "big") % 1_000_000
srtp = HKDF(
    algorithm=hashes.SHA256(), length=len(EXPORTED), salt=k_call,
    info=b"cryptic_srtp_v2" + b"AEAD_AES_128_GCM",
).derive(EXPORTED)

print("caller_public", caller_pub.hex())
print("callee_public", callee_pub.hex())
print("commitment", commitment.hex())
print("transcript_sha256", hashlib.sha256(transcript).hexdigest())
print("k_call", k_call.hex())
print("sas", f"{n // 1000:03d}{n % 1000:03d}")
print("srtp_aes128gcm", srtp.hex())
