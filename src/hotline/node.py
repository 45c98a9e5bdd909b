"""The composition root: builds every part of a node explicitly and runs it.

Nothing else constructs services or looks them up globally; each part receives exactly
the collaborators it uses, so the dependency graph is readable here in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from hotline.api.app import build_app
from hotline.api.operator import OperatorServices
from hotline.clock import Clock, SystemClock
from hotline.delivery.backoff import Backoff
from hotline.delivery.messenger import Messenger
from hotline.delivery.sender import PeerHealth, PeerSender
from hotline.delivery.transport import HttpTransport
from hotline.federation.receiver import Receiver
from hotline.inbox import Inbox
from hotline.nodedir.config import KEYSTORE_NAME, TOKEN_NAME, NodeConfig, load_config
from hotline.nodedir.keystore import unlock
from hotline.nodedir.token import TokenChecker
from hotline.peers import PeerDirectory
from hotline.protocol.keys import PartyKeys
from hotline.status import PeerStatus, line_status
from hotline.store.database import Database
from hotline.store.engine import create_engine
from hotline.store.links import Link
from hotline.store.migrate import upgrade
from hotline.store.outbox import Pending

log = logging.getLogger("hotline.node")

EXIT_STORAGE_FATAL = 70
LINK_POLL_SECONDS = 2.0
SEND_BATCH_BYTES = 4 * 1024 * 1024
RECEIVE_BATCH_LIMIT = 8 * 1024 * 1024


def _return_free_memory() -> None:
    """Hand memory freed after start-up (imports, the 64 MiB Argon2id unlock) back to the
    OS, so an idle node's resident size reflects what it really holds."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _storage_fatal(exc: BaseException) -> None:
    """A failed commit leaves the database state unknown: stop now, recover on restart."""
    log.critical("storage failure, stopping the node: %s", exc)
    logging.shutdown()
    os._exit(EXIT_STORAGE_FATAL)


class Node:
    def __init__(self, node_dir: Path, config: NodeConfig, keys: PartyKeys,
                 clock: Clock | None = None) -> None:
        self.dir = node_dir
        self.config = config
        self.keys = keys
        self.clock = clock or SystemClock()
        delivery = config.delivery
        self.db = Database(create_engine(config.db), _storage_fatal)
        self.peers = PeerDirectory(self.db, self.clock)
        self.transport = HttpTransport(delivery.request_timeout_seconds)
        self.inbox = Inbox(self.db)
        self.senders: dict[str, PeerSender] = {}
        self.messenger = Messenger(me=config.party, keys=keys, peers=self.peers,
                                   db=self.db, clock=self.clock,
                                   on_enqueued=self._wake_sender)
        self.receiver = Receiver(me=config.party, keys=keys, peers=self.peers,
                                 db=self.db, clock=self.clock,
                                 skew_ms=delivery.skew_seconds * 1000,
                                 max_envelope_bytes=delivery.max_envelope_bytes,
                                 reorder_window=delivery.reorder_window,
                                 on_released=self.inbox.publish)
        self.peers.on_change(self._sync_senders)
        self._poller: asyncio.Task[None] | None = None

    # -- senders -----------------------------------------------------------------------
    def _wake_sender(self, party: str, fresh: list[Pending]) -> None:
        sender = self.senders.get(party)
        if sender is not None:
            sender.offer(fresh)

    def _sync_senders(self, links: list[Link]) -> None:
        d = self.config.delivery
        for link in links:
            sender = self.senders.get(link.party)
            if sender is not None:
                sender.link = link
                sender.wake()
                continue
            sender = PeerSender(me=self.config.party, link=link, db=self.db,
                                transport=self.transport, clock=self.clock,
                                backoff=Backoff(d.backoff_initial_seconds, d.backoff_max_seconds),
                                batch_size=d.batch_size, batch_bytes=SEND_BATCH_BYTES,
                                reseal=self.messenger.reseal,
                                reseal_after_ms=int(d.reseal_after_seconds * 1000))
            self.senders[link.party] = sender
            if self._poller is not None:
                sender.start()

    async def _poll_links(self) -> None:
        while True:
            await asyncio.sleep(LINK_POLL_SECONDS)
            try:
                await self.peers.reload()
            except Exception:  # a transient read error must not end link discovery
                log.exception("reloading links failed")

    async def status(self) -> list[PeerStatus]:
        health = {party: s.health for party, s in self.senders.items()}
        return await line_status(self.db, self.peers, health, self.clock)

    def health(self) -> dict[str, PeerHealth]:
        return {party: s.health for party, s in self.senders.items()}

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        upgrade(self.db.engine)
        self.db.start()
        await self.peers.reload()
        for sender in self.senders.values():
            sender.start()
        self._poller = asyncio.create_task(self._poll_links(), name="link-poller")
        log.info("node %s started with %d link(s)", self.config.party, len(self.senders))
        _return_free_memory()

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        for sender in self.senders.values():
            await sender.stop()
        await self.transport.close()
        await self.db.stop()

    def app(self) -> FastAPI:
        @contextlib.asynccontextmanager
        async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
            await self.start()
            try:
                yield
            finally:
                await self.stop()

        services = OperatorServices(
            party=self.config.party, name=self.config.name, key_id=self.keys.public.key_id,
            listen=self.config.listen, messenger=self.messenger, inbox=self.inbox,
            status=self.status, tokens=TokenChecker(self.dir / TOKEN_NAME))
        return build_app(operator=services, receiver=self.receiver,
                         batch_limit=RECEIVE_BATCH_LIMIT, lifespan=lifespan)


def open_node(node_dir: Path, passphrase: str) -> Node:
    config = load_config(node_dir)
    keys = unlock(node_dir / KEYSTORE_NAME, passphrase)
    return Node(node_dir, config, keys)


def serve(node_dir: Path, passphrase: str, log_level: str = "info") -> None:
    """Run the node until SIGINT/SIGTERM; all state is in the database, so a restart
    resumes where this one stopped."""
    node = open_node(node_dir, passphrase)
    server = uvicorn.Server(uvicorn.Config(
        node.app(), host=node.config.host, port=node.config.port, log_level=log_level,
        access_log=False, lifespan="on", timeout_graceful_shutdown=5))
    server.run()
    if not server.started:
        raise SystemExit(1)
