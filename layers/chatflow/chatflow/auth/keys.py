"""ES256 signing-key generation: the one place that turns a fresh P-256 key into PEM text.

Used wherever a key pair is minted (the deploy-time ``jwt-keys`` custom resource, test runs, the
local stack, benchmarks), so every caller produces the exact formats ``chatflow.auth.tokens`` loads:
PKCS#8 private key and SubjectPublicKeyInfo public key, both unencrypted PEM.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def generate_es256_pem_pair() -> tuple[str, str]:
    """A new ES256 (P-256) key pair as ``(private PEM, public PEM)``."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public
