"""Console passwords: the length policy, Argon2id hashes with the agreed parameters, and
verification that answers False (never raises) for anything but the right password."""

from __future__ import annotations

import pytest

from hotline.accounts import passwords
from hotline.errors import HotlineError

GOOD = "correct horse battery staple"


@pytest.mark.parametrize(("password", "words"), [
    ("", "empty"), ("x" * (passwords.MIN_LENGTH - 1), "too short"),
    ("x" * (passwords.MAX_LENGTH + 1), "too long")])
def test_the_policy_refuses_empty_short_and_over_long_passwords(password: str,
                                                                words: str) -> None:
    with pytest.raises(HotlineError) as caught:
        passwords.check_policy(password)
    assert caught.value.error_id == "weak-password"
    assert words in caught.value.message


def test_the_policy_accepts_the_bounds() -> None:
    passwords.check_policy("x" * passwords.MIN_LENGTH)
    passwords.check_policy("x" * passwords.MAX_LENGTH)


def test_hashes_are_argon2id_with_owasp_parameters_and_a_fresh_salt() -> None:
    first, second = passwords.hash_password(GOOD), passwords.hash_password(GOOD)
    assert first.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert first != second  # a random salt each time
    salt, digest = first.split("$")[4:6]
    assert len(salt) == 22
    assert len(digest) == 43
    assert GOOD not in first


def test_verify_accepts_the_password_and_refuses_anything_else() -> None:
    encoded = passwords.hash_password(GOOD)
    assert passwords.verify_password(GOOD, encoded)
    assert not passwords.verify_password(GOOD + " ", encoded)
    assert not passwords.verify_password("", encoded)
    assert not passwords.verify_password("x" * (passwords.MAX_LENGTH + 1), encoded)
    assert not passwords.verify_password(GOOD, "not a PHC string")


def test_the_same_passphrase_typed_composed_or_decomposed_is_the_same_password() -> None:
    composed, decomposed = "Przewod\u00f3w 2022 missile", "Przewodo\u0301w 2022 missile"
    assert composed != decomposed
    assert passwords.verify_password(decomposed, passwords.hash_password(composed))


def test_burning_time_verifies_against_a_real_argon2id_hash() -> None:
    assert passwords.dummy_hash().startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert passwords.dummy_hash() is passwords.dummy_hash()  # made once
    passwords.burn_time(GOOD)  # returns, whatever the password
