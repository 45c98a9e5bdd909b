"""Bring a database to the newest schema with Alembic.

Alembic (and Mako behind it) costs a serving node about 11 MB of memory for as long as it
runs, so a node first asks the database which revision it is at and imports Alembic only
when there is something to upgrade. ``HEAD`` must name the newest migration; a test
checks it against Alembic's own view of the scripts.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError

from hotline.errors import StorageError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD = "0016"


def _config(connection: Connection) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for a database never migrated."""
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    except (OperationalError, DBAPIError):
        return None
    return None if row is None else str(row[0])


def upgrade(engine: Engine) -> None:
    try:
        if current_revision(engine) == HEAD:
            return
        from alembic import command

        with engine.begin() as conn:
            command.upgrade(_config(conn), "head")
    except (OperationalError, DBAPIError, OSError) as exc:
        raise StorageError("db-unavailable", f"cannot migrate the database: {exc}",
                           hint="check the --db URL and that the server is running") from None
