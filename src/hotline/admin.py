"""Offline administration of a node directory: create it, make and accept link offers.

These run without a serving node (a running node notices link changes within seconds).
Everything is validated before the first file is written, and a failure part-way
removes what was created, so a refused ``init`` leaves nothing behind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from hotline.clock import SystemClock
from hotline.errors import ConfigError
from hotline.nodedir.config import (
    CONFIG_NAME,
    DB_NAME,
    KEYSTORE_NAME,
    TOKEN_NAME,
    NodeConfig,
    load_config,
    write_config,
)
from hotline.nodedir.keystore import write_keystore
from hotline.nodedir.token import write_token
from hotline.protocol.keys import PartyKeys, b64e, safety_number
from hotline.protocol.offer import LinkOffer, make_offer, parse_offer
from hotline.store import links as link_store
from hotline.store import log as log_store
from hotline.store.engine import create_engine, driver_url, sqlite_url
from hotline.store.links import Link
from hotline.store.migrate import upgrade

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

    from hotline.calls.directory import Directory

T = TypeVar("T")


@dataclass(frozen=True)
class Created:
    config: NodeConfig
    key_id: str
    safety_number: str
    token: str
    #: the offline revocation certificate of the first key, written beside the keystore
    #: for the operator to move somewhere apart (``docs/protocol.md``, "Revocation")
    revocation_cert: Path | None = None


def revocation_cert_path(node_dir: Path, kid: str) -> Path:
    return node_dir / f"revocation-cert-{kid}.json"


def write_revocation_cert(path: Path, cert: dict[str, object]) -> Path:
    """Write a revocation certificate (owner-only; never over an existing file)."""
    import json
    import os

    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError("file-exists", f"{path} exists; it is never overwritten",
                          hint="give another --out") from None
    except OSError as exc:
        raise ConfigError("unwritable-file", f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(cert, sort_keys=True, separators=(",", ":")) + "\n")
    return path


def current_keys(node_dir: Path, passphrase: str) -> tuple[NodeConfig, PartyKeys]:
    """The node's config and the pair its key history names as current (the keystore's
    newest pair before the first rotation)."""
    from hotline.keys.service import own_history
    from hotline.nodedir.keystore import unlock_all

    config = load_config(node_dir)
    pairs, _kek = unlock_all(node_dir / KEYSTORE_NAME, passphrase)
    engine = create_engine(config.db)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            current = own_history(conn, config.party, pairs[0]).current
    finally:
        engine.dispose()
    pair = next((p for p in pairs if current is not None and p.public.key_id == current.kid),
                None)
    if pair is None:
        raise ConfigError("key-missing", "the keystore does not hold this party's current key")
    return config, pair


def _make_dirs(node_dir: Path) -> list[Path]:
    """Create ``node_dir`` (and missing parents); the directories made, outermost first,
    so that a failed ``init`` can leave the file system as it found it. A path that is a
    file, or that cannot be created, is ``bad-dir``."""
    missing = [d for d in (node_dir, *node_dir.parents) if not d.exists()][::-1]
    if node_dir.exists() and not node_dir.is_dir():
        raise ConfigError("bad-dir", f"--dir {node_dir} is a file, not a directory",
                          hint="choose another --dir")
    try:
        node_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        for made_dir in reversed(missing):
            with contextlib.suppress(OSError):
                made_dir.rmdir()
        raise ConfigError("bad-dir", f"cannot create the node directory {node_dir}: "
                          f"{exc.strerror or exc}", hint="choose another --dir") from None
    return missing


def init_node(node_dir: Path, *, party: str, name: str | None, listen: str,
                    endpoints: list[str], db: str | None, passphrase: str) -> Created:
    node_dir = node_dir.resolve()
    for existing in (CONFIG_NAME, KEYSTORE_NAME):
        if (node_dir / existing).exists():
            raise ConfigError("node-exists", f"{node_dir} already holds a node ({existing})",
                              hint="choose another --dir; an existing node is never overwritten")
    db_url = db or sqlite_url(node_dir / DB_NAME)
    from pydantic import ValidationError

    from hotline.fieldtext import describe

    try:
        config = NodeConfig(party=party, name=name or party, listen=listen,
                            endpoints=endpoints or [f"http://{listen}"], db=db_url)
    except ValidationError as exc:
        field, problem = describe(exc.errors()[0])
        option = {"endpoints": "endpoint"}.get(field.split(".")[0], field.split(".")[0])
        raise ConfigError("bad-option", f"--{option}: {problem}") from None
    driver_url(config.db)
    if not passphrase:
        raise ConfigError("empty-passphrase", "the keystore passphrase must not be empty")
    made = _make_dirs(node_dir)
    created: list[Path] = []
    try:
        keys = PartyKeys.generate()
        write_keystore(node_dir / KEYSTORE_NAME, party, keys, passphrase)
        created.append(node_dir / KEYSTORE_NAME)
        created.append(node_dir / TOKEN_NAME)
        token = write_token(node_dir / TOKEN_NAME)
        if db is None:
            created += [node_dir / (DB_NAME + s) for s in ("", "-wal", "-shm")]
        engine = create_engine(config.db)
        try:
            upgrade(engine)
            with engine.begin() as conn:  # the log's first entry: whose keys these are
                pub = keys.public
                log_store.append_one(conn, "keys", {
                    "party": party, "kid": pub.key_id, "sign_key": b64e(pub.sign_bytes),
                    "enc_key": b64e(pub.enc_bytes)}, SystemClock().now_ms())
        finally:
            engine.dispose()
        from hotline.protocol.keyhistory import make_certificate

        cert_path = revocation_cert_path(node_dir, keys.public.key_id)
        write_revocation_cert(cert_path, make_certificate(party, keys, SystemClock().now_ms()))
        created.append(cert_path)
        write_config(node_dir, config)
    except BaseException as exc:
        for path in created:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        for made_dir in reversed(made):  # only what init made, and only if left empty
            with contextlib.suppress(OSError):
                made_dir.rmdir()
        if isinstance(exc, OSError):
            raise ConfigError("unwritable-file", f"cannot write the node directory "
                              f"{node_dir}: {exc.strerror or exc}; nothing was kept") from None
        raise
    pub = keys.public
    return Created(config, pub.key_id, safety_number(party, pub.sign_bytes, pub.enc_bytes), token,
                   cert_path)


def make_link_offer(node_dir: Path, passphrase: str) -> tuple[bytes, str]:
    config, keys = current_keys(node_dir, passphrase)
    offer = make_offer(party=config.party, name=config.name, keys=keys,
                       endpoints=config.endpoints, at_ms=SystemClock().now_ms())
    pub = keys.public
    return offer, safety_number(config.party, pub.sign_bytes, pub.enc_bytes)


def read_offer(data: bytes) -> LinkOffer:
    return parse_offer(data)


def accept_link(node_dir: Path, offer: LinkOffer, statements: object = None) -> bool:
    """Store a verified offer (``store/links.py``); ``statements``: the party's signed
    key statements, for a removed link whose key it changed meanwhile."""
    config = load_config(node_dir)
    engine = create_engine(config.db)
    try:
        upgrade(engine)
        with engine.begin() as conn:
            return link_store.accept_offer(conn, offer, config.party, SystemClock().now_ms(),
                                           statements)
    finally:
        engine.dispose()


def list_links(node_dir: Path) -> list[Link]:
    config = load_config(node_dir)
    engine = create_engine(config.db)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            return link_store.all_links(conn)
    finally:
        engine.dispose()


def apply_directory(node_dir: Path, file: Path, *, base: int | None = None,
                    force: bool = False) -> tuple[int, bool, Directory, list[str]]:
    """Validate a directory file and store it as the node's newest version.

    Applying the same content again changes nothing (the version stays); a file with any
    problem is refused whole, with every problem named by line and field. With ``base``
    (the version the file was edited from), a newer stored version refuses it with
    ``directory-conflict``. Writers beside this one (a running node, other ``roles
    apply``) are waited for, not raced (:func:`hotline.store.directory.write`).

    The link policies are checked against the node's links and its peers' desk reports
    (:func:`hotline.calls.registry.validate_for_node`): a problem refuses the file unless
    ``force``. Returns ``(version, changed, directory, warnings)``.
    """
    from hotline.calls.directory import parse_directory
    from hotline.calls.registry import apply, link_facts, validate_for_node
    from hotline.store import directory as directory_store

    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("unreadable-file", f"cannot read {file}: {exc}") from None
    config = load_config(node_dir)
    directory = parse_directory(text, file.name)
    engine = create_engine(config.db)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            facts = link_facts(conn)
        warnings = validate_for_node(directory, config.party, facts, filename=file.name,
                                     text=text, force=force)
        version, changed = _write_retrying(
            engine, lambda conn: apply(conn, directory, SystemClock().now_ms(), base=base))
    except directory_store.DirectoryConflict as exc:
        directory_store.refused(exc, "cli")
        raise
    finally:
        engine.dispose()
    return version, changed, directory, warnings


#: Transactions a ``roles apply`` tries before it gives up on transient lock failures.
WRITE_ATTEMPTS = 3


def _write_retrying(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run ``work`` in a transaction, again (up to :data:`WRITE_ATTEMPTS` in all) if the
    database gave up on a lock: PostgreSQL breaking a deadlock with the node's writer
    (the two can take the log's and the directory's locks in either order), or SQLite
    still busy after its busy timeout, or the log grown by another process since this
    one last appended (:class:`~hotline.store.log.StaleLogState`: the cached log state
    is dropped, the retry reads it afresh). The work re-reads everything it builds on,
    so a retry is safe; after the last attempt the failure is a retryable
    ``directory-conflict``, never a raw database error."""
    from sqlalchemy.exc import OperationalError

    from hotline.store.directory import DirectoryConflict
    from hotline.store.log import StaleLogState

    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            with engine.begin() as conn:
                return work(conn)
        except (OperationalError, StaleLogState) as exc:
            cause = exc.orig if isinstance(exc, OperationalError) else exc
            if isinstance(exc, OperationalError) and not _lock_failure(exc.orig):
                raise
            if attempt == WRITE_ATTEMPTS:
                raise DirectoryConflict(
                    f"the directory stayed locked by other writers ({cause})", None,
                    hint="apply it again") from None
    raise AssertionError("unreachable")


#: SQLSTATEs of PostgreSQL giving up on a lock: deadlock, lock not available,
#: serialization failure.
_PG_LOCK_STATES = frozenset({"40P01", "55P03", "40001"})
_SQLITE_BUSY = 5


def _lock_failure(error: BaseException | None) -> bool:
    """Whether a driver error means "gave up waiting for a lock" (worth a retry), as
    opposed to a broken disk or connection (not)."""
    if getattr(error, "sqlstate", None) in _PG_LOCK_STATES:
        return True
    code = getattr(error, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF == _SQLITE_BUSY

