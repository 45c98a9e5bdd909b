"""Checking a directory's link policies against the node's links and its peers' desks.

The file alone cannot say that ``[links.US-SJ]`` is a typo for ``[links.US-JS]``: only the
node knows its links. Without this check such a directory applies cleanly and then refuses
every call from US-JS (no policy for it) and offers it no desks. :func:`check_links` is the
one function every path a directory enters by runs (``roles apply``, the operator API's
``PUT /api/v1/directory``, the node loading its stored directory at start and on reload):
the edges turn its errors into a refusal (unless forced) and show its warnings.

Pure: the node's facts come in as :class:`LinkFacts` (read by
:func:`hotline.calls.registry.link_facts`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from hotline.calls.directory.fields import _suggest
from hotline.calls.directory.model import Directory
from hotline.calls.directory.problems import Problem, _Path, _render_path, _show

#: Field path → line in the file (None: unknown, as for the stored copy).
Locate = Callable[[_Path], int | None]


@dataclass(frozen=True)
class LinkFacts:
    """What the node knows about its links when a directory is checked.

    ``linked``: parties with a link in force; ``removed``: parties whose link was removed
    (and not accepted again); ``offered``: per peer whose desk report we hold, the role ids
    it offers us (absent: not known, so not checked)."""

    linked: frozenset[str]
    removed: frozenset[str] = frozenset()
    offered: Mapping[str, frozenset[str]] = field(default_factory=dict)


def _no_line(_path: _Path) -> int | None:
    return None


def check_links(directory: Directory, me: str, facts: LinkFacts,
                locate: Locate = _no_line) -> tuple[list[Problem], list[Problem]]:
    """``(errors, warnings)`` of ``directory``'s link policies, each by line and field.

    Errors: a policy for this node's own party; a policy for a party with no link (a
    typo, most often: the closest linked party is suggested); a linked party without a
    policy (every call from it would be refused); a role in ``may_call`` or a fallback's
    ``call`` that the peer's latest desk report does not offer. Warning: a policy for a
    party whose link was removed (it applies again if the link is accepted again).
    """
    errors: list[Problem] = []
    warnings: list[Problem] = []

    def problem(into: list[Problem], path: _Path, message: str) -> None:
        into.append(Problem(locate(path), _render_path(path), message))

    for peer, policy in sorted(directory.links.items()):
        path: _Path = ("links", peer)
        if peer == me:
            problem(errors, path, f"names this node's own party {_show(me)}; "
                                  "link policies are for peers")
            continue
        if peer in facts.removed and peer not in facts.linked:
            problem(warnings, path, "is a policy for a removed link: kept, it applies "
                                    "again only if the link is accepted again")
            continue
        if peer not in facts.linked:
            linked = ", ".join(sorted(facts.linked)) or "none yet"
            problem(errors, path, f"no link with {_show(peer)}: this policy would apply to "
                                  f"nobody (linked parties: {linked})"
                                  + _suggest(peer, facts.linked))
            continue
        offered = facts.offered.get(peer)
        if offered is None:
            continue
        # by field, not by index: the model keeps the roles sorted, not as written
        for ours, theirs in sorted(policy.may_call.items()):
            for role in theirs:
                if role not in offered:
                    problem(errors, ("links", peer, "may_call", ours),
                            _not_offered(role, peer, offered))
        for index, fallback in enumerate(policy.fallback):
            for counterpart in fallback.call:
                role, _at, party = counterpart.partition("@")
                known = facts.offered.get(party)
                if known is not None and role not in known:
                    problem(errors, ("links", peer, "fallback", index, "call"),
                            _not_offered(role, party, known))
    for peer in sorted(facts.linked - set(directory.links) - {me}):
        problem(errors, ("links",), f"linked party {peer} has no [links.{peer}] policy: "
                                    f"every call from {peer} would be refused and it would "
                                    "be offered no desks")
    return errors, warnings


def _not_offered(role: str, party: str, offered: frozenset[str]) -> str:
    desks = ", ".join(sorted(offered)) or "none"
    return (f"{party} does not offer role {_show(role)} (its desks for us: {desks})"
            + _suggest(role, offered))
