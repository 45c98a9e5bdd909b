"""Storage: one SQL schema on SQLite (default, embedded) or PostgreSQL.

SQLAlchemy Core only (no ORM): the queries are few and their shape matters for
durability, so they stay visible. All writes of a node go through one writer
(:mod:`hotline.store.writer`) which group-commits concurrent work.
"""
