"""The party's private keys at rest, encrypted under a passphrase.

The key-encryption key is derived with Argon2id (memory-hard, so a stolen file resists
guessing) and the keys are sealed with ChaCha20-Poly1305. Public keys are stored in the
clear beside them so offline commands can show them without the passphrase.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from hotline.errors import ConfigError
from hotline.protocol.keys import PartyKeys, PublicKeys, b64d, b64e

ARGON2_MEMORY_KIB = 64 * 1024
ARGON2_ITERATIONS = 3
ARGON2_LANES = 4


def _derive(passphrase: str, salt: bytes, memory: int, iterations: int, lanes: int) -> bytes:
    kdf = Argon2id(salt=salt, length=32, iterations=iterations, lanes=lanes,
                   memory_cost=memory)
    return kdf.derive(passphrase.encode("utf-8"))


def write_keystore(path: Path, party: str, keys: PartyKeys, passphrase: str) -> None:
    if not passphrase:
        raise ConfigError("empty-passphrase", "the keystore passphrase must not be empty")
    salt, nonce = os.urandom(16), os.urandom(12)
    kek = _derive(passphrase, salt, ARGON2_MEMORY_KIB, ARGON2_ITERATIONS, ARGON2_LANES)
    sign, enc = keys.raw()
    aad = party.encode()
    sealed = ChaCha20Poly1305(kek).encrypt(nonce, sign + enc, aad)
    doc = {"v": 1, "party": party,
           "kdf": {"alg": "argon2id", "salt": b64e(salt), "memory_kib": ARGON2_MEMORY_KIB,
                   "iterations": ARGON2_ITERATIONS, "lanes": ARGON2_LANES},
           "aead": "chacha20-poly1305", "nonce": b64e(nonce), "sealed": b64e(sealed),
           "public": {"sign": b64e(keys.public.sign_bytes), "enc": b64e(keys.public.enc_bytes)}}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2)


def _read(path: Path) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return doc
    except (OSError, ValueError) as exc:
        raise ConfigError("bad-keystore", f"cannot read keystore {path}: {exc}") from None


def read_public(path: Path) -> PublicKeys:
    doc = _read(path)
    return PublicKeys.from_b64(doc["public"]["sign"], doc["public"]["enc"])


def unlock(path: Path, passphrase: str) -> PartyKeys:
    """Decrypt the keystore; a wrong passphrase is a clear error, never a crash."""
    doc = _read(path)
    kdf = doc["kdf"]
    kek = _derive(passphrase, b64d(kdf["salt"]), int(kdf["memory_kib"]), int(kdf["iterations"]),
                  int(kdf["lanes"]))
    try:
        raw = ChaCha20Poly1305(kek).decrypt(b64d(doc["nonce"]), b64d(doc["sealed"]),
                                            str(doc["party"]).encode())
    except InvalidTag:
        raise ConfigError("wrong-passphrase", "the passphrase does not open this keystore",
                          hint="set HOTLINE_PASSPHRASE to the passphrase given at init") from None
    keys = PartyKeys.from_raw(raw[:32], raw[32:])
    if b64e(keys.public.sign_bytes) != doc["public"]["sign"]:
        raise ConfigError("bad-keystore", "keystore public key does not match its private key")
    return keys
