"""generate_es256_pem_pair: the PEM pair it mints is what the signer and verifier load."""

from __future__ import annotations

import uuid

from chatflow.auth.keys import generate_es256_pem_pair
from chatflow.auth.tokens import TokenSigner, TokenVerifier, load_public_keys


def test_pair_signs_and_verifies_and_is_fresh_each_time() -> None:
    private, public = generate_es256_pem_pair()
    assert private.startswith("-----BEGIN PRIVATE KEY-----")
    assert public.startswith("-----BEGIN PUBLIC KEY-----")
    signer = TokenSigner(private, issuer="chatflow", audience="clients", ttl_s=60)
    verifier = TokenVerifier(load_public_keys(public), issuer="chatflow", audience="clients")
    user_id = uuid.uuid4()
    token = signer.issue(user_id=user_id, handle="ada", role="user").token
    assert verifier.verify(token).user_id == user_id
    assert generate_es256_pem_pair()[0] != private
