"""API key format and hashing: `ck_<prefix>_<secret>`, shown once, stored as a hash.

The prefix is stored in clear for lookup; the secret has 190 bits of entropy, so a
SHA-256 digest compared in constant time is enough (a slow hash guards low-entropy
passwords, not random keys — user passwords use argon2).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

_KEY = re.compile(r"^ck_([a-z0-9]{8})_([A-Za-z0-9_-]{32})$")


@dataclass(frozen=True)
class NewKey:
    prefix: str
    secret_hash: str
    plaintext: str


def generate_key() -> NewKey:
    """A fresh key: the plaintext (show once) plus what the store keeps."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    prefix = "".join(secrets.choice(alphabet) for _ in range(8))
    secret = secrets.token_urlsafe(24)
    return NewKey(prefix, hash_secret(secret), f"ck_{prefix}_{secret}")


def split_key(plaintext: str) -> tuple[str, str] | None:
    """(prefix, secret) of a well-formed key, else None."""
    match = _KEY.match(plaintext.strip())
    return (match.group(1), match.group(2)) if match else None


def hash_secret(secret: str) -> str:
    """Hex SHA-256 of a key's secret part."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented secret with the stored hash."""
    return hmac.compare_digest(hash_secret(secret), stored_hash)
