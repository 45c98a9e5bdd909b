"""The party's private keys at rest, encrypted under a passphrase.

The key-encryption key is derived with Argon2id (memory-hard, so a stolen file resists
guessing) and the keys are sealed with ChaCha20-Poly1305. Public keys are stored in the
clear beside them so offline commands can show them without the passphrase.

After a key rotation the file (version 2) holds every key pair the party ever had, each
sealed on its own under the same key-encryption key, oldest first, with ``public``
naming the newest: old encryption keys still open envelopes a peer sealed before it
learnt of the rotation. Which pair is *current* is the database's key history (the file
is rewritten before the rotation commits, so it may hold one pair more than that).
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


def _entries(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The sealed pairs, oldest first (version 1 holds exactly one)."""
    if doc.get("v") == 2:
        entries: list[dict[str, Any]] = doc["keys"]
        return entries
    return [{"nonce": doc["nonce"], "sealed": doc["sealed"], "public": doc["public"]}]


def _kek(doc: dict[str, Any], passphrase: str) -> bytes:
    kdf = doc["kdf"]
    return _derive(passphrase, b64d(kdf["salt"]), int(kdf["memory_kib"]),
                   int(kdf["iterations"]), int(kdf["lanes"]))


def _open(doc: dict[str, Any], kek: bytes) -> list[PartyKeys]:
    out = []
    for entry in _entries(doc):
        try:
            raw = ChaCha20Poly1305(kek).decrypt(b64d(entry["nonce"]), b64d(entry["sealed"]),
                                                str(doc["party"]).encode())
        except InvalidTag:
            raise ConfigError("wrong-passphrase", "the passphrase does not open this keystore",
                              hint="set HOTLINE_PASSPHRASE to the passphrase given at init"
                              ) from None
        keys = PartyKeys.from_raw(raw[:32], raw[32:])
        if b64e(keys.public.sign_bytes) != entry["public"]["sign"]:
            raise ConfigError("bad-keystore",
                              "keystore public key does not match its private key")
        out.append(keys)
    return out


def unlock(path: Path, passphrase: str) -> PartyKeys:
    """Decrypt the keystore's newest pair; a wrong passphrase is a clear error."""
    return unlock_all(path, passphrase)[0][-1]


def unlock_all(path: Path, passphrase: str) -> tuple[list[PartyKeys], bytes]:
    """Every pair, oldest first, and the key-encryption key (to add a pair later
    without asking for the passphrase again)."""
    doc = _read(path)
    kek = _kek(doc, passphrase)
    return _open(doc, kek), kek


def add_pair(path: Path, kek: bytes, keys: PartyKeys) -> None:
    """Add ``keys`` as the newest pair, sealed under ``kek``; the file is replaced
    atomically (written beside it, flushed to disk, renamed over it)."""
    doc = _read(path)
    _open(doc, kek)  # the right key-encryption key, or a clear error before any write
    nonce = os.urandom(12)
    sign, enc = keys.raw()
    sealed = ChaCha20Poly1305(kek).encrypt(nonce, sign + enc, str(doc["party"]).encode())
    public = {"sign": b64e(keys.public.sign_bytes), "enc": b64e(keys.public.enc_bytes)}
    entries = [*_entries(doc), {"nonce": b64e(nonce), "sealed": b64e(sealed),
                                "public": public}]
    fresh = {"v": 2, "party": doc["party"], "kdf": doc["kdf"], "aead": doc["aead"],
             "keys": entries, "public": public}
    tmp = path.with_name(path.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(fresh, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
