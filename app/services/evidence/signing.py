"""Ed25519 signing keys, the JWKS that publishes them, and DSSE envelopes over in-toto
Statements. The private key comes from SIGNING_KEY (PEM); outside production a key is
generated under the data dir so a first run works, with a warning."""

from __future__ import annotations

import base64
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from app.config import ConfigError, Settings
from app.services.access.local_secrets import read_or_create
from app.services.canonical import canonical_bytes

log = logging.getLogger("qc_collector.signing")

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://qc-collector.dev/attestations/qc-report/v1"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def thumbprint(key: Ed25519PublicKey) -> str:
    """RFC 7638 JWK thumbprint: the key id everybody can recompute."""
    members = canonical_bytes({"crv": "Ed25519", "kty": "OKP", "x": b64url(raw_public(key))})
    return b64url(hashlib.sha256(members).digest())


def jwk(key: Ed25519PublicKey, status: str) -> dict[str, str]:
    return {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw_public(key)),
            "kid": thumbprint(key), "use": "sig", "alg": "EdDSA", "status": status}


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: what is actually signed."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


@dataclass(frozen=True)
class SigningKeys:
    active: Ed25519PrivateKey
    retired: tuple[Ed25519PublicKey, ...] = ()

    @property
    def active_id(self) -> str:
        return thumbprint(self.active.public_key())

    def jwks(self) -> dict[str, Any]:
        keys = [jwk(self.active.public_key(), "active")]
        keys += [jwk(k, "retired") for k in self.retired if thumbprint(k) != self.active_id]
        return {"keys": keys}

    def envelope(self, statement: dict[str, Any]) -> bytes:
        """A DSSE envelope (canonical JSON bytes) over the statement's canonical bytes."""
        payload = canonical_bytes(statement)
        signature = self.active.sign(pae(PAYLOAD_TYPE, payload))
        return canonical_bytes({
            "payloadType": PAYLOAD_TYPE,
            "payload": base64.b64encode(payload).decode(),
            "signatures": [{"keyid": self.active_id, "sig": base64.b64encode(signature).decode()}],
        })


def statement(*, report_id: str, tenant: str, content_sha256: str, signer_key_id: str,
              signer_role: str, signed_at: str, signing_key_id: str) -> dict[str, Any]:
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": "report.json", "digest": {"sha256": content_sha256}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "report_id": report_id,
            "tenant": tenant,
            "signer": {"key_id": signer_key_id, "role": signer_role},
            "signed_at": signed_at,
            "signing_key_id": signing_key_id,
        },
    }


def verify_envelope(envelope: dict[str, Any], public: Ed25519PublicKey) -> bool:
    payload = base64.b64decode(envelope["payload"], validate=True)
    for entry in envelope["signatures"]:
        try:
            public.verify(base64.b64decode(entry["sig"], validate=True),
                          pae(envelope["payloadType"], payload))
            return True
        except (InvalidSignature, ValueError):
            continue
    return False


def public_key_from_jwk(entry: dict[str, Any]) -> Ed25519PublicKey:
    if entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519":
        raise ValueError("not an Ed25519 OKP key")
    return Ed25519PublicKey.from_public_bytes(unb64url(entry["x"]))


def _private_from_pem(pem: bytes, origin: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{origin} is not an unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{origin} must be an Ed25519 key")
    return key


def _retired(pem_bundle: str | None) -> tuple[Ed25519PublicKey, ...]:
    if not pem_bundle:
        return ()
    keys = []
    marker = "-----END PUBLIC KEY-----"
    for block in pem_bundle.split(marker):
        if "-----BEGIN PUBLIC KEY-----" not in block:
            continue
        key = serialization.load_pem_public_key((block.strip() + "\n" + marker + "\n").encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigError("SIGNING_KEYS_RETIRED may only hold Ed25519 public keys")
        keys.append(key)
    return tuple(keys)


def load(settings: Settings) -> SigningKeys:
    retired = _retired(settings.signing_keys_retired)
    if settings.signing_key:
        return SigningKeys(_private_from_pem(settings.signing_key.encode(), "SIGNING_KEY"), retired)
    if settings.environment == "production":
        raise ConfigError("SIGNING_KEY is required when COLLECTOR_ENV=production")
    path = Path(settings.data_dir) / "signing-key.pem"
    return SigningKeys(_local_key(path), retired)


def _local_key(path: Path) -> Ed25519PrivateKey:
    """The development key under the data dir, created once."""
    def make() -> bytes:
        return Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
    return _private_from_pem(read_or_create(path, make, what="SIGNING_KEY"), str(path))
