"""Console passwords: a length policy and Argon2id hashes in PHC format.

Argon2id with OWASP's recommended minimum (19 MiB, 2 passes, 1 lane) makes every guess
against a stolen hash cost memory as well as time, while keeping a login around a few
tens of milliseconds. The PHC string carries its own parameters and salt, so hashes made
today keep verifying if the parameters are raised later.

Length is the only rule: a long passphrase beats composition rules (NIST SP 800-63B),
and the upper bound keeps a request from making the node hash megabytes. Text is
NFKC-normalised first, so the same passphrase typed on two keyboards (composed or
decomposed accents, full-width digits) is the same password.
"""

from __future__ import annotations

import functools
import os
import unicodedata

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from hotline.errors import HotlineError

MIN_LENGTH = 12
MAX_LENGTH = 1024

MEMORY_KIB = 19_456
ITERATIONS = 2
LANES = 1
SALT_BYTES = 16
HASH_BYTES = 32


def _normalise(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def check_policy(password: str) -> None:
    """Refuse a password that is empty, too short or too long (``weak-password``)."""
    length = len(_normalise(password))
    if length == 0:
        raise HotlineError("weak-password", "the password is empty",
                           hint=f"use a passphrase of at least {MIN_LENGTH} characters")
    if length < MIN_LENGTH:
        raise HotlineError("weak-password",
                           f"the password is too short: {length} characters, at least "
                           f"{MIN_LENGTH} are needed",
                           hint="a few unrelated words make a long password easy to remember")
    if length > MAX_LENGTH:
        raise HotlineError("weak-password",
                           f"the password is too long: {length} characters, at most "
                           f"{MAX_LENGTH} are allowed")


def _kdf() -> Argon2id:
    return Argon2id(salt=os.urandom(SALT_BYTES), length=HASH_BYTES, iterations=ITERATIONS,
                    lanes=LANES, memory_cost=MEMORY_KIB)


def hash_password(password: str) -> str:
    """The Argon2id PHC string of ``password`` with a fresh random salt. Slow on purpose:
    call it from a worker thread, never on the event loop."""
    return _kdf().derive_phc_encoded(_normalise(password).encode("utf-8"))


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches ``encoded``; False (never an exception) for a wrong or
    over-long password, and for a damaged hash, which then simply matches nothing."""
    normalised = _normalise(password)
    if len(normalised) > MAX_LENGTH:
        return False
    try:
        Argon2id.verify_phc_encoded(normalised.encode("utf-8"), encoded)
    except InvalidKey:
        return False
    return True


@functools.cache
def dummy_hash() -> str:
    """A hash of nothing anyone knows, made once, with the same parameters as real ones."""
    return hash_password(os.urandom(16).hex())


def burn_time(password: str) -> None:
    """Spend what verifying a real account costs, so that answering an unknown operator
    is not measurably faster than answering a known one with a wrong password."""
    verify_password(password, dummy_hash())
