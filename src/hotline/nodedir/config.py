"""``DIR/config.toml``: what a node is and where it listens, validated on load.

Validation happens here, at the file boundary, so a typo names its field and the node
refuses to start rather than running with a half-understood configuration.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated

import tomli_w
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from hotline.bounds import LABEL_PATTERN
from hotline.errors import ConfigError, LinkError
from hotline.fieldtext import describe
from hotline.protocol.envelope import PARTY_RE
from hotline.protocol.offer import NAME_RE, check_endpoint

CONFIG_NAME = "config.toml"
KEYSTORE_NAME = "keys.json"
TOKEN_NAME = "operator.token"  # noqa: S105 (a file name, not a secret)
DB_NAME = "hotline.db"


MIB = 1024 * 1024
LABEL_RE = re.compile(LABEL_PATTERN)


class DeliveryConfig(BaseModel):
    """Tuning of the line. The defaults are what docs/protocol.md promises peers."""

    model_config = ConfigDict(extra="forbid")

    batch_size: Annotated[int, Field(ge=1, le=4096)] = 256
    max_envelope_bytes: Annotated[int, Field(ge=1024, le=4 * 1024 * 1024)] = 1024 * 1024
    skew_seconds: Annotated[int, Field(ge=1, le=86400)] = 300
    reorder_window: Annotated[int, Field(ge=1, le=100_000)] = 1024
    backoff_initial_seconds: Annotated[float, Field(gt=0, le=60)] = 0.1
    backoff_max_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    request_timeout_seconds: Annotated[float, Field(gt=0, le=600)] = 10.0
    #: Re-seal a waiting envelope signed longer ago than this (keep well under peers' skew).
    reseal_after_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0
    #: Every attempt to reach a peer failing this long raises an alarm ``line-down``.
    line_down_alarm_seconds: Annotated[float, Field(gt=0, le=86400)] = 60.0
    #: How long a peer's rotated-out key is still accepted, counted on this node's clock
    #: from when it accepted the rotation (docs/protocol.md, "Key history").
    key_grace_seconds: Annotated[float, Field(gt=0, le=30 * 86400)] = 86400.0
    #: Waiting this long (monotonic clock) on a missing sequence number from a peer — or
    #: a peer saying it waits on one of ours — raises an alarm ``sequence-gap``.
    gap_alarm_seconds: Annotated[float, Field(gt=0, le=86400)] = 60.0
    #: Per peer, the bulk lane's queue (what ``hotline send`` / ``POST /api/v1/messages``
    #: enqueue and the peer has not acknowledged) holds at most this many messages and
    #: this many characters of payload; a send past either is refused whole (429,
    #: ``bulk-queue-full``). Defaults: a minute of line at the measured ~1,800 messages/s
    #: (108,000, rounded down) and at ~600 characters a message (docs/protocol.md,
    #: "Back-pressure"). The control lane has no such bound: it is never refused for
    #: bulk's sake.
    bulk_queue_max_messages: Annotated[int, Field(ge=1, le=100_000_000)] = 100_000
    bulk_queue_max_bytes: Annotated[int, Field(ge=1024, le=1 << 40)] = 64 * MIB
    #: The federation protocol this node speaks: 2 (lanes); 1 makes it speak as a node
    #: from before lanes did (one sequence per link), for a staged upgrade or a test of
    #: a mixed-version pair.
    protocol: Annotated[int, Field(ge=1, le=2)] = 2

    @model_validator(mode="after")
    def _reseal_inside_skew(self) -> DeliveryConfig:
        # an envelope that waited longer than the skew window, not yet re-sealed, is
        # refused by a peer with this node's window (timestamp-out-of-window): the
        # re-seal must come first (docs/protocol.md §9: "well inside the peers' skew")
        if self.reseal_after_seconds > self.skew_seconds:
            raise ValueError(f"delivery.reseal_after_seconds ({self.reseal_after_seconds:g}) "
                             f"must be at most delivery.skew_seconds ({self.skew_seconds}): "
                             "a peer with the same window would refuse what waited between "
                             "the two")
        return self


class LogConfig(BaseModel):
    """How often this node asks each peer to cosign its log (whichever comes first)."""

    model_config = ConfigDict(extra="forbid")

    checkpoint_seconds: Annotated[float, Field(gt=0, le=86400)] = 10.0
    checkpoint_entries: Annotated[int, Field(ge=1, le=10_000_000)] = 10_000


Rate = Annotated[float, Field(gt=0, le=1e9)]


class PeerLimits(BaseModel):
    """What one verified peer may make this node store per second, per lane (token
    buckets: a sustained rate and a burst). ``control`` is call signals and states,
    receipts and desk reports; ``bulk`` is everything else. A burst in bytes must hold
    the largest envelope (``delivery.max_envelope_bytes``), or such an envelope could
    never pass."""

    model_config = ConfigDict(extra="forbid")

    # bulk: above the line's measured rate (about 1,800 messages/s), so an honest peer's
    # queue drains at the line's pace (the bulk queue bound's minute, docs/protocol.md
    # §11.2) while a flooding peer is still held to a bounded rate
    envelopes_per_second: Rate = 2000.0
    envelopes_burst: Annotated[int, Field(ge=1, le=1_000_000)] = 8192
    bytes_per_second: Rate = 16.0 * MIB
    bytes_burst: Annotated[int, Field(ge=1024, le=1024 * MIB)] = 32 * MIB
    control_envelopes_per_second: Rate = 50.0
    control_envelopes_burst: Annotated[int, Field(ge=1, le=1_000_000)] = 200
    control_bytes_per_second: Rate = 2.0 * MIB
    control_bytes_burst: Annotated[int, Field(ge=1024, le=1024 * MIB)] = 4 * MIB


class AdmissionConfig(BaseModel):
    """``[admission]``: budgets per client address (before any signature is checked) and
    per verified peer (``default``, overridden per link in ``[admission.peers.PARTY]``),
    and the connection caps and timeouts of the HTTP server (``docs/protocol.md`` §12)."""

    model_config = ConfigDict(extra="forbid")

    #: per client address, before authentication (a request's body counts in full, so
    #: the burst holds at least one largest request: 8 MiB, 4096 lines)
    address_envelopes_per_second: Rate = 4000.0
    address_envelopes_burst: Annotated[int, Field(ge=4096, le=10_000_000)] = 8192
    address_bytes_per_second: Rate = 32.0 * MIB
    address_bytes_burst: Annotated[int, Field(ge=8 * MIB, le=4096 * MIB)] = 32 * MIB
    default: PeerLimits = PeerLimits()
    peers: dict[str, PeerLimits] = {}
    #: connections open at once, in total and from one client address
    max_connections: Annotated[int, Field(ge=1, le=1_000_000)] = 2048
    max_connections_per_address: Annotated[int, Field(ge=1, le=1_000_000)] = 128
    #: a request's headers must be complete this long after its first byte
    header_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 10.0
    #: a request's body must be complete this long after its headers
    body_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    #: a connection with no request under way is closed after this long
    idle_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    #: bytes a client may send before its request's headers are complete
    max_header_bytes: Annotated[int, Field(ge=1024, le=16 * MIB)] = 64 * 1024

    @field_validator("peers")
    @classmethod
    def _peers(cls, value: dict[str, PeerLimits]) -> dict[str, PeerLimits]:
        for party in value:
            if not PARTY_RE.fullmatch(party):
                raise ValueError(f"{party!r} is not a party id (e.g. US-JS)")
        return value


class LinkTestConfig(BaseModel):
    """``[health.links.PARTY]``: one link's own test interval."""

    model_config = ConfigDict(extra="forbid")

    test_every_seconds: Annotated[float, Field(ge=0.1, le=86400)]


class HealthConfig(BaseModel):
    """``[health]``: link tests and the thresholds that judge each endpoint and link
    ``up``, ``degraded`` or ``down`` (``hotline.links.health``; docs/protocol.md §7.2)."""

    model_config = ConfigDict(extra="forbid")

    #: every link tests each of its endpoints this often (overridden per link)
    test_every_seconds: Annotated[float, Field(ge=0.1, le=86400)] = 60.0
    #: a test not answered within this long is lost
    test_timeout_seconds: Annotated[float, Field(gt=0, le=600)] = 10.0
    #: how many of the latest tests of an endpoint its state is judged on
    window: Annotated[int, Field(ge=1, le=1000)] = 10
    #: this share of the window lost: degraded
    degraded_loss: Annotated[float, Field(gt=0, le=1)] = 0.2
    #: this share of the window lost: down
    down_loss: Annotated[float, Field(gt=0, le=1)] = 0.5
    #: this many tests lost in a row: down
    down_after: Annotated[int, Field(ge=1, le=1000)] = 3
    #: the median round trip of the window's answered tests at least this: degraded
    degraded_rtt_ms: Annotated[float, Field(gt=0, le=600_000)] = 1000.0
    links: dict[str, LinkTestConfig] = {}

    @field_validator("links")
    @classmethod
    def _links(cls, value: dict[str, LinkTestConfig]) -> dict[str, LinkTestConfig]:
        for party in value:
            if not PARTY_RE.fullmatch(party):
                raise ValueError(f"{party!r} is not a party id (e.g. US-JS)")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> HealthConfig:
        if self.down_loss < self.degraded_loss:
            raise ValueError("health.down_loss must be at least health.degraded_loss")
        # the streak of lost tests is counted within the window: a longer one could never
        # be reached, and the rule would be off without a word
        if self.down_after > self.window:
            raise ValueError(f"health.down_after ({self.down_after}) must be at most "
                             f"health.window ({self.window}): only the window's tests "
                             "are kept, so a longer streak of losses is never seen")
        return self

    def test_every(self, party: str) -> float:
        own = self.links.get(party)
        return self.test_every_seconds if own is None else own.test_every_seconds
class MetricsConfig(BaseModel):
    """``[metrics]``: ``token_file``, a file (relative to the node directory, or
    absolute) holding the token that opens ``/metrics`` from anywhere (as
    ``Authorization: Bearer``); without it ``/metrics`` is open only from the node's
    own host (and to the operator token). The file is read when presented, never logged."""

    model_config = ConfigDict(extra="forbid")

    #: "" (the default): no metrics token
    token_file: Annotated[str, Field(max_length=4096)] = ""

    @field_validator("token_file")
    @classmethod
    def _token_file(cls, value: str) -> str:
        return plain_text(value, "a file name")


class NodeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    party: str
    #: the display name peers see in this node's link offers: their rule, checked here
    #: so that `hotline init` refuses what every peer would refuse later
    name: str
    listen: str
    endpoints: list[str]
    db: Annotated[str, Field(max_length=4096)]

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_RE.fullmatch(value):
            raise ValueError("the party's display name must be 1-120 characters, none of "
                             "them a control character (no line breaks, tabs or escapes)")
        return plain_text(value, "a name")

    @field_validator("db")
    @classmethod
    def _db(cls, value: str) -> str:
        return plain_text(value, "a database URL")
    delivery: DeliveryConfig = DeliveryConfig()
    log: LogConfig = LogConfig()
    admission: AdmissionConfig = AdmissionConfig()
    health: HealthConfig = HealthConfig()
    metrics: MetricsConfig = MetricsConfig()

    @model_validator(mode="after")
    def _bursts_hold_an_envelope(self) -> NodeConfig:
        largest = self.delivery.max_envelope_bytes
        a = self.admission
        for name, limits in [("default", a.default)] + [(f"peers.{p}", v)
                                                        for p, v in a.peers.items()]:
            for lane in ("bytes_burst", "control_bytes_burst"):
                if getattr(limits, lane) < largest:
                    raise ValueError(f"admission.{name}.{lane} must be at least "
                                     f"delivery.max_envelope_bytes ({largest})")
        return self

    @field_validator("party")
    @classmethod
    def _party(cls, value: str) -> str:
        if not PARTY_RE.fullmatch(value):
            raise ValueError("party id must be 1-32 of A-Z, 0-9 and '-', e.g. US-JS")
        return value

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        plain_text(value, "a listen address")
        try:
            parse_listen(value)
        except ConfigError as exc:
            raise ValueError(exc.message) from None
        return value

    @field_validator("endpoints")
    @classmethod
    def _endpoints(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one endpoint is needed")
        try:
            return [check_endpoint(e) for e in value]
        except LinkError as exc:
            raise ValueError(exc.message) from None

    @property
    def host(self) -> str:
        return parse_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return parse_listen(self.listen)[1]


def unlinked_sections(config: NodeConfig, linked: set[str]) -> list[str]:
    """The per-party sections of ``config`` (``[health.links.PARTY]``,
    ``[admission.peers.PARTY]``) naming a party this node has no link with: a typo
    (``RU-GX``) or a removed link, which the node would otherwise ignore without a
    word. Not refused (a link removed later must not stop a restart): warned of."""
    sections = [f"[health.links.{p}]" for p in config.health.links if p not in linked]
    sections += [f"[admission.peers.{p}]" for p in config.admission.peers if p not in linked]
    return sections


def plain_text(value: str, what: str) -> str:
    """``value`` if it is text a file can hold and a log line can show: no control
    character (NUL, line breaks, escapes) and no lone surrogate (what a non-UTF-8 byte
    of a command-line argument becomes); else ``ValueError`` saying so."""
    if not LABEL_RE.fullmatch(value):
        raise ValueError(f"{what} must not hold control characters (NUL, line breaks, "
                         "escapes)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} must be UTF-8 text") from None
    return value


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ConfigError("bad-listen", f"listen address {value!r} is not HOST:PORT",
                          hint="for example 127.0.0.1:7100")
    return host.strip("[]"), int(port)


def config_path(node_dir: Path) -> Path:
    return node_dir / CONFIG_NAME


def load_config(node_dir: Path) -> NodeConfig:
    path = config_path(node_dir)
    if not path.is_file():
        raise ConfigError("no-node", f"{node_dir} is not a node directory (no {CONFIG_NAME})",
                          hint="create one with `hotline init`, or pass --dir")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError("bad-config", f"{path}: not UTF-8 text (byte {exc.start})",
                          hint="TOML files are UTF-8; write non-ASCII names as such or "
                               "as \\uXXXX escapes") from None
    except OSError as exc:
        raise ConfigError("bad-config", f"{path}: cannot be read ({exc.strerror})") from None
    try:
        data = tomllib.loads(text)
        # strict: TOML has types, so `window = true` or `test_every_seconds = "5"` is a
        # mistake to name, not a 1 or a 5 to guess (an integer still fills a float)
        return NodeConfig.model_validate(data, strict=True)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("bad-config", f"{path}: {exc}") from None
    except ValidationError as exc:
        field, problem = describe(exc.errors()[0])
        raise ConfigError("bad-config", f"{path}: field {field!r}: {problem}") from None


def write_config(node_dir: Path, config: NodeConfig) -> None:
    """Write ``config`` whole or not at all: encoded first, then renamed into place (a
    value that cannot be written as UTF-8 leaves no empty or partial file behind)."""
    text = tomli_w.dumps(config.model_dump()).encode("utf-8")
    path = config_path(node_dir)
    partial = path.with_name(path.name + ".new")
    partial.write_bytes(text)
    os.replace(partial, path)
