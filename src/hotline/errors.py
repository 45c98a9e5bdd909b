"""One error family for the whole node.

Every failure a user or a peer can see carries a stable, kebab-case id (peers and scripts
match on it), a human message, and where useful a hint saying what to do next. The edges
(CLI, operator API, federation API) translate these into exit codes and HTTP statuses;
the domain only raises them.
"""

from __future__ import annotations


class HotlineError(Exception):
    """A failure with a stable id, a message and an optional hint."""

    #: HTTP status the edges use when this error crosses an HTTP boundary.
    status: int = 400
    #: whether its security-log line is written already (where it was decided, with more
    #: to say than the edge knows); the edge writes one for every refusal that is not
    logged: bool = False

    def __init__(self, error_id: str, message: str, hint: str | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.error_id = error_id
        self.message = message
        self.hint = hint
        if status is not None:
            self.status = status

    def already_logged(self) -> HotlineError:
        """This error, marked as having had its one security-log line (for ``raise``)."""
        self.logged = True
        return self

    def to_dict(self) -> dict[str, str]:
        out = {"error": self.error_id, "message": self.message}
        if self.hint:
            out["hint"] = self.hint
        return out

    def __str__(self) -> str:
        return f"{self.error_id}: {self.message}" + (f" ({self.hint})" if self.hint else "")


class EnvelopeRejected(HotlineError):
    """An inbound envelope failed verification; nothing of it may be stored."""


class InvalidInput(HotlineError):
    """A request field (query, header, path, form or body) is outside what the node
    takes: answered 422 ``invalid-request``, naming ``field`` (``query.after``,
    ``header.Last-Event-ID``, ``body.from_ms``)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__("invalid-request", f"{field}: {problem}", status=422)
        self.field = field

    def to_dict(self) -> dict[str, str]:
        return {**super().to_dict(), "field": self.field}


class ConfigError(HotlineError):
    """The node directory, its config or a command-line value is unusable."""


class LinkError(HotlineError):
    """A link is missing, not yet accepted, or an offer does not verify."""


class PeerRefused(Exception):
    """A released envelope's effect is refused (malformed, not allowed, inconsistent):
    raised by a federation handler inside the receiver's transaction; the dispatcher
    undoes what the envelope did so far and writes the one security-log line."""


class StorageError(HotlineError):
    """The database could not be reached or migrated."""


# Stable ids of envelope rejections (docs/protocol.md lists them; peers match on them).
MALFORMED = "malformed-envelope"
OVERSIZE = "oversize"
BAD_SIGNATURE = "bad-signature"
UNKNOWN_SENDER = "unknown-sender"
UNKNOWN_KEY = "unknown-key"
WRONG_RECIPIENT = "wrong-recipient"
REPLAYED_ID = "replayed-id"
SEQUENCE_REUSED = "sequence-reused"
SEQUENCE_TOO_FAR_AHEAD = "sequence-too-far-ahead"
TIMESTAMP_OUT_OF_WINDOW = "timestamp-out-of-window"
UNSUPPORTED_VERSION = "unsupported-version"
UNDECRYPTABLE = "undecryptable"
LINK_GENERATION = "link-generation"
KEY_RETIRED = "key-retired"
KEY_BACKDATED = "key-backdated"
KEY_REVOKED = "key-revoked"

REJECTION_STATUS: dict[str, int] = {
    MALFORMED: 400,
    OVERSIZE: 413,
    BAD_SIGNATURE: 401,
    UNKNOWN_SENDER: 403,
    UNKNOWN_KEY: 401,
    WRONG_RECIPIENT: 421,
    REPLAYED_ID: 409,
    SEQUENCE_REUSED: 409,
    SEQUENCE_TOO_FAR_AHEAD: 409,
    TIMESTAMP_OUT_OF_WINDOW: 400,
    UNSUPPORTED_VERSION: 400,
    UNDECRYPTABLE: 400,
    LINK_GENERATION: 409,
    KEY_RETIRED: 401,
    KEY_BACKDATED: 401,
    KEY_REVOKED: 401,
}


def rejected(error_id: str, message: str) -> EnvelopeRejected:
    """Build an envelope rejection with the status the federation API answers with."""
    return EnvelopeRejected(error_id, message, status=REJECTION_STATUS.get(error_id, 400))
