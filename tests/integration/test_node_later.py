"""Work a node runs beside its callers (``Node._later``: settling the senders after a
link change, retiring a removed link's sender, clearing ``link-removed``) is not
supervised: an error in it must still be logged and alarmed, not kept for the stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from tests.nodes import PASSPHRASE, NodeProcess

Make = Callable[[str], NodeProcess]


async def test_an_error_in_work_beside_the_callers_is_logged_and_alarmed(
        make_sqlite_node: Make, caplog: pytest.LogCaptureFixture) -> None:
    from hotline.node import open_node

    made = make_sqlite_node("US-JS")
    node = open_node(made.dir, PASSPHRASE)
    await node.start()
    try:
        async def settle_something() -> None:
            raise OSError("database is locked")

        with caplog.at_level(logging.ERROR, logger="hotline.node"):
            node._later(settle_something())
            deadline = asyncio.get_running_loop().time() + 10
            while not [a for a in await node.alarms.standing() if a.kind == "task-failed"]:
                assert asyncio.get_running_loop().time() < deadline, "no task-failed alarm"
                await asyncio.sleep(0.01)
        [alarm] = [a for a in await node.alarms.standing() if a.kind == "task-failed"]
        assert "settle_something" in alarm.message
        assert "OSError: database is locked" in alarm.message
        assert "background work" in caplog.text
        assert "Traceback" in caplog.text
    finally:
        await node.stop()
