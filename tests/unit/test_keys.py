"""API key format: `ck_<prefix>_<secret>`, shown once, only a hash of the secret is kept."""

from __future__ import annotations

import re

import pytest

from cronkeeper.domain.keys import generate_key, hash_secret, secret_matches, split_key

KEY_PATTERN = re.compile(r"^ck_[a-z0-9]{8}_[A-Za-z0-9_-]{32}$")


def test_a_generated_key_has_the_documented_shape() -> None:
    key = generate_key()
    assert KEY_PATTERN.match(key.plaintext)
    assert key.plaintext.startswith(f"ck_{key.prefix}_")


def test_splitting_a_generated_key_gives_back_its_prefix_and_secret() -> None:
    key = generate_key()
    parts = split_key(key.plaintext)
    assert parts is not None
    prefix, secret = parts
    assert prefix == key.prefix
    assert f"ck_{prefix}_{secret}" == key.plaintext


def test_a_key_pasted_with_surrounding_whitespace_still_splits() -> None:
    key = generate_key()
    assert split_key(f"  {key.plaintext}\n") == split_key(key.plaintext)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ck_",
        "ck_abcdefgh",
        "ck_ABCDEFGH_" + "a" * 32,
        "ck_abcdefg_" + "a" * 32,
        "ck_abcdefgh_" + "a" * 31,
        "ck_abcdefgh_" + "a" * 33,
        "xx_abcdefgh_" + "a" * 32,
        "Bearer ck_abcdefgh_" + "a" * 32,
    ],
)
def test_malformed_keys_do_not_split(text: str) -> None:
    assert split_key(text) is None


def test_only_a_hash_of_the_secret_is_stored() -> None:
    key = generate_key()
    _, secret = split_key(key.plaintext) or ("", "")
    assert key.secret_hash != secret
    assert secret not in key.secret_hash
    assert key.secret_hash == hash_secret(secret)


def test_the_right_secret_matches_its_stored_hash() -> None:
    key = generate_key()
    _, secret = split_key(key.plaintext) or ("", "")
    assert secret_matches(secret, key.secret_hash)


def test_a_wrong_secret_does_not_match() -> None:
    key = generate_key()
    _, secret = split_key(key.plaintext) or ("", "")
    assert not secret_matches(secret[:-1] + ("A" if secret[-1] != "A" else "B"), key.secret_hash)
    assert not secret_matches("", key.secret_hash)


def test_two_generated_keys_differ_in_prefix_secret_and_hash() -> None:
    first, second = generate_key(), generate_key()
    assert first.plaintext != second.plaintext
    assert first.prefix != second.prefix
    assert first.secret_hash != second.secret_hash
