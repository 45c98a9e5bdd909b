"""A node's directory: roles, operators, duty roster, escalation chains, channels, link policy.

An administrator writes it as TOML and applies it with ``hotline roles apply``. It decides
who rings when a peer calls one of our roles, so a mistake in it surfaces at the worst
moment: as a call that nobody answers. It is therefore checked completely at the file
boundary, and *every* problem is reported at once with the file, the line and the field
path (``roles.toml:12: chains.cgs.steps[0].wait: ...``), so one edit fixes them all.

The same checks guard :meth:`Directory.from_dict`: the stored copy is read back through them,
so a damaged or hand-edited store fails with the same kind of error instead of a crash
deep inside a call.

Durations are stored as integer milliseconds and instants as integer milliseconds since the
Unix epoch (UTC): the call state machine compares them with the node clock, which counts in
milliseconds too.

The package, by part: :mod:`.model` (the dataclasses and the canonical stored form),
:mod:`.problems` (what is wrong, where), :mod:`.locate` (line numbers in the TOML source),
:mod:`.fields` and :mod:`.check` (the checks, leaf by leaf and section by section) and
:mod:`.parse` (the file entry point). Import from the package, not the parts.
"""

from hotline.calls.directory.model import (
    CHANNEL_KINDS,
    CHANNEL_RE,
    CONSOLE,
    DAY_MS,
    DEFAULT_DELIVER_WITHIN_MS,
    DEFAULT_REPEAT_MS,
    DEFAULT_STAFFED_WITHIN_MS,
    DEFAULT_WAIT_MS,
    LANGUAGES,
    LATE_POLICIES,
    MAX_STEPS,
    MAX_TEXT,
    MIN_SECRET,
    OFF_DUTY,
    ON_DUTY,
    OPERATOR_RE,
    OUTCOMES,
    ROLE_RE,
    STATUSES,
    Chain,
    ChannelSpec,
    Directory,
    EmailChannelSpec,
    Fallback,
    LinkPolicy,
    Operator,
    Role,
    RosterEntry,
    Step,
    WebhookChannelSpec,
    default_chain,
)
from hotline.calls.directory.parse import parse_directory
from hotline.calls.directory.problems import (
    MAX_PROBLEMS,
    DirectoryError,
    Problem,
    parse_duration,
)

__all__ = [
    "CHANNEL_KINDS",
    "CHANNEL_RE",
    "CONSOLE",
    "DAY_MS",
    "DEFAULT_DELIVER_WITHIN_MS",
    "DEFAULT_REPEAT_MS",
    "DEFAULT_STAFFED_WITHIN_MS",
    "DEFAULT_WAIT_MS",
    "LANGUAGES",
    "LATE_POLICIES",
    "MAX_PROBLEMS",
    "MAX_STEPS",
    "MAX_TEXT",
    "MIN_SECRET",
    "OFF_DUTY",
    "ON_DUTY",
    "OPERATOR_RE",
    "OUTCOMES",
    "ROLE_RE",
    "STATUSES",
    "Chain",
    "ChannelSpec",
    "Directory",
    "DirectoryError",
    "EmailChannelSpec",
    "Fallback",
    "LinkPolicy",
    "Operator",
    "Problem",
    "Role",
    "RosterEntry",
    "Step",
    "WebhookChannelSpec",
    "default_chain",
    "parse_directory",
    "parse_duration",
]
