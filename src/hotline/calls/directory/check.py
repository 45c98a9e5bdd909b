"""Checking a whole directory document, section by section, into a :class:`Directory`.

Each ``[section]`` of the file has one method here; a new section (issue 16's schedules,
say) is one more method called from :meth:`Checker.run`, with its own module if it is big.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hotline.calls.directory.fields import (
    _OPERATOR_RULE,
    _ROLE_RULE,
    Fields,
    _is_host,
    _is_http_url,
    _is_int,
    _iso,
    _suggest,
)
from hotline.calls.directory.model import (
    CHANNEL_KINDS,
    CHANNEL_RE,
    CONSOLE,
    DEFAULT_DELIVER_WITHIN_MS,
    DEFAULT_GAP_ALARM_HORIZON_MS,
    DEFAULT_STAFFED_WITHIN_MS,
    GAP_CHECK_HORIZON_MS,
    LANGUAGES,
    LATE_POLICIES,
    MAX_STEPS,
    MIN_GAP_HORIZON_MS,
    MIN_SECRET,
    OFF_DUTY,
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
)
from hotline.calls.directory.problems import (
    DirectoryError,
    _got,
    _Path,
    _render_path,
    _show,
)
from hotline.protocol.envelope import PARTY_RE
from hotline.schedules.model import Schedule
from hotline.schedules.parse import gap_problems, parse_schedule


class Checker(Fields):
    """Walks the parsed document, collecting problems; builds the directory if there are none.

    ``stored`` switches the few leaves that differ between the file and :meth:`to_dict`:
    durations and instants are ``<name>_ms`` integers there, and ``null`` means absent.
    Everything else, ids, references and limits, is checked by the same code.
    """

    #: When the file is checked (ms since the epoch): gaps are looked for from here.
    #: None for the stored copy, which is read back whatever the time (a gap that has
    #: come since it was applied is the duty watch's alarm, not a broken store).
    now_ms: int | None = None

    def run(self) -> Directory:
        top = self._table(self.data, (), ("settings", "roles", "operators", "roster",
                                          "channels", "chains", "links", "schedules"))
        if top is None:
            raise DirectoryError(self.filename, self.problems)
        roles = self._roles(top)
        channels = self._channels(top)
        operators = self._operators(top)
        roster = self._roster(top)
        chains = self._chains(top)
        links = self._links(top)
        staffed_within_ms, alarm_role, horizon_ms = self._settings(top)
        schedules = self._schedules(top)
        if self.problems:
            raise DirectoryError(self.filename, self.problems)
        directory = Directory(staffed_within_ms, roles, operators, roster, chains, channels,
                              links, alarm_role, schedules, horizon_ms)
        if self.now_ms is not None:
            self._gaps(directory, self.now_ms)
            if self.problems:
                raise DirectoryError(self.filename, self.problems)
        return directory

    # -------------------------------------------------------------- sections
    def _settings(self, top: Mapping[str, Any]) -> tuple[int, str | None, int]:
        raw = top.get("settings")
        table = {} if raw is None else self._table(
            raw, ("settings",), (self._ms_key("staffed_within"), "alarm_role",
                                 self._ms_key("gap_alarm_horizon")))
        if table is None:
            return DEFAULT_STAFFED_WITHIN_MS, None, DEFAULT_GAP_ALARM_HORIZON_MS
        ms = self._duration(table, "staffed_within", ("settings",),
                            default=DEFAULT_STAFFED_WITHIN_MS)
        horizon = self._duration(table, "gap_alarm_horizon", ("settings",),
                                 default=DEFAULT_GAP_ALARM_HORIZON_MS)
        if horizon is not None and not MIN_GAP_HORIZON_MS <= horizon <= GAP_CHECK_HORIZON_MS:
            self.err(("settings", self._ms_key("gap_alarm_horizon")),
                     "must be from 1m to 336h (14 days)")
        alarm_role = table.get("alarm_role")
        path: _Path = ("settings", "alarm_role")
        if alarm_role is not None:
            if not isinstance(alarm_role, str):
                self.err(path, f"must be a role id, not {_got(alarm_role)}")
                alarm_role = None
            elif not self._role_ref(alarm_role, path):
                alarm_role = None
        return (DEFAULT_STAFFED_WITHIN_MS if ms is None else ms), alarm_role, \
            (DEFAULT_GAP_ALARM_HORIZON_MS if horizon is None else horizon)

    def _schedules(self, top: Mapping[str, Any]) -> dict[str, Schedule]:
        """``[schedules.<role>]``: checked by :func:`hotline.schedules.parse.parse_schedule`
        (participants must be operators holding the role)."""
        schedules: dict[str, Schedule] = {}
        for role, raw in sorted(self._section(top, "schedules").items()):
            path: _Path = ("schedules", role)
            if role not in self.role_ids:
                self.err(path, f"undefined role {_show(role)}: a schedule belongs to a role "
                               "defined under [roles]" + _suggest(role, self.role_ids))
                continue
            if not isinstance(raw, Mapping):
                self.err(path, f"must be a table, not {_got(raw)}")
                continue
            schedule, problems = parse_schedule(role, raw, self.locate,
                                                operators=self.operator_roles, at_path=path)
            self.problems.extend(problems)
            if schedule is None:
                continue
            schedules[role] = schedule
        return schedules

    def _gaps(self, directory: Directory, now_ms: int) -> None:
        """In a file: the gaps of each schedule (its layers over the roster, no overrides)
        within :data:`GAP_CHECK_HORIZON_MS` from now are problems unless its
        ``accept_gaps`` accepts them."""
        for role, schedule in sorted(directory.schedules.items()):
            self.problems.extend(gap_problems(
                schedule, now_ms, now_ms + GAP_CHECK_HORIZON_MS, self.locate,
                lambda ms, role=role: directory.roster_on_duty(role, ms),  # type: ignore[misc]
                base_edges=sorted(directory.roster_edges(role)), at_path=("schedules", role)))

    def _roles(self, top: Mapping[str, Any]) -> dict[str, Role]:
        if top.get("roles") is None:
            self._missing(("roles",), 'at least one role, e.g. [roles.duty] with '
                                      'title = { en = "Duty officer" }')
            return {}
        section = self._section(top, "roles")
        if not section and isinstance(top.get("roles"), Mapping):
            self.err(("roles",), "define at least one role")
        roles: dict[str, Role] = {}
        for rid, raw in sorted(section.items()):
            path: _Path = ("roles", rid)
            self._id(rid, path, ROLE_RE, "role id", _ROLE_RULE)
            self.role_ids.add(rid)
            table = self._table(raw, path, ("title",))
            if table is None:
                continue
            roles[rid] = Role(rid, self._titles(table.get("title"), (*path, "title")))
        return roles

    def _titles(self, value: object, path: _Path) -> dict[str, str]:
        if value is None:
            self._missing(path, 'a title in English at least, e.g. title = { en = "Duty officer" }')
            return {}
        if not isinstance(value, Mapping):
            self.err(path, f'must be a table of language -> text, e.g. {{ en = "Duty officer" }}'
                           f", not {_got(value)}")
            return {}
        table = self._table(value, path, None) or {}
        titles: dict[str, str] = {}
        for lang, text in sorted(table.items()):
            if lang not in LANGUAGES:
                self.err((*path, lang), f"unknown language {_show(lang)} "
                                        f"(use {', '.join(LANGUAGES)})")
                continue
            titles[lang] = self._text(text, (*path, lang))
        if "en" not in table:
            self._missing((*path, "en"), "the English title (en) is required")
        return titles

    def _operators(self, top: Mapping[str, Any]) -> dict[str, Operator]:
        operators: dict[str, Operator] = {}
        for oid, raw in sorted(self._section(top, "operators").items()):
            path: _Path = ("operators", oid)
            self._id(oid, path, OPERATOR_RE, "operator id", _OPERATOR_RULE)
            self.operator_roles[oid] = set()
            table = self._table(raw, path, ("name", "roles", "language", "email"))
            if table is None:
                continue
            name = table.get("name")
            if name is None:
                self._missing((*path, "name"), 'the operator\'s name, e.g. name = "A. Smith"')
                name = ""
            else:
                name = self._text(name, (*path, "name"))
            held: tuple[str, ...] = ()
            if table.get("roles") is None:
                self._missing((*path, "roles"), 'the roles held, e.g. roles = ["duty"]')
            else:
                held = self._strings(table["roles"], (*path, "roles"), self._role_ref,
                                     empty="an operator must hold at least one role")
            self.operator_roles[oid] = {role for role in held if role in self.role_ids}
            language = "en" if table.get("language") is None else \
                self._choice(table["language"], (*path, "language"), LANGUAGES)
            email = None if table.get("email") is None else \
                self._email(table["email"], (*path, "email"))
            operators[oid] = Operator(oid, name, tuple(sorted(held)), language, email)
        return operators

    def _roster(self, top: Mapping[str, Any]) -> tuple[RosterEntry, ...]:
        raw = top.get("roster")
        if raw is None:
            return ()
        if not isinstance(raw, list | tuple):
            self.err(("roster",), f"must be an array of tables ([[roster]] entries), "
                                  f"not {_got(raw)}")
            return ()
        allowed = ("operator", "role", "status", self._ms_key("from"), self._ms_key("until"))
        entries: list[RosterEntry] = []
        for i, item in enumerate(raw):
            path: _Path = ("roster", i)
            table = self._table(item, path, allowed)
            if table is None:
                continue
            operator = self._ref(table, "operator", path, self._operator_ref)
            role = self._ref(table, "role", path, self._role_ref)
            if operator in self.operator_roles and role in self.role_ids \
                    and role not in self.operator_roles[operator]:
                held = ", ".join(sorted(self.operator_roles[operator])) or "none"
                self.err((*path, "role"), f"operator {_show(operator)} does not hold role "
                                          f"{_show(role)} (their roles: {held})")
            if table.get("status") is None:
                self._missing((*path, "status"), f"one of {', '.join(STATUSES)}")
                status = OFF_DUTY
            else:
                status = self._choice(table["status"], (*path, "status"), STATUSES)
            start = self._instant(table, "from", path)
            until = self._instant(table, "until", path)
            if start is not None and until is not None and until <= start:
                self.err((*path, self._ms_key("until")),
                         f"{_iso(until)} is not after from ({_iso(start)})")
            entries.append(RosterEntry(operator, role, status, start, until))
        return tuple(entries)

    def _ref(self, table: Mapping[str, Any], key: str, path: _Path,
             check: Callable[[str, _Path], bool]) -> str:
        """A required string field that names something defined elsewhere."""
        value = table.get(key)
        if value is None:
            self._missing((*path, key), f"the {key} id")
            return ""
        if not isinstance(value, str):
            self.err((*path, key), f"must be a string, not {_got(value)}")
            return ""
        check(value, (*path, key))
        return value

    def _channels(self, top: Mapping[str, Any]) -> dict[str, ChannelSpec]:
        channels: dict[str, ChannelSpec] = {}
        for cid, raw in sorted(self._section(top, "channels").items()):
            path: _Path = ("channels", cid)
            if cid == CONSOLE:
                self.err(path, '"console" is built in and may not be redefined: '
                               "give this channel another id")
                continue
            self._id(cid, path, CHANNEL_RE, "channel id", _ROLE_RULE)
            self.channel_ids.add(cid)
            body = self._table(raw, path, None)
            if body is None:
                continue
            kind = body.get("kind")
            if kind is None:
                self._missing((*path, "kind"), 'kind = "webhook" or kind = "email"')
                continue
            if kind not in CHANNEL_KINDS:
                self.err((*path, "kind"), f'{_show(kind)} is not a channel kind '
                                          '(use "webhook" or "email")')
                continue
            if kind == "webhook":
                channels[cid] = self._webhook(cid, body, path)
            else:
                channels[cid] = self._email_channel(cid, body, path)
        return channels

    def _webhook(self, cid: str, body: Mapping[str, Any], path: _Path) -> WebhookChannelSpec:
        table = self._table(body, path, ("kind", "url", "secret")) or {}
        url = ""
        if table.get("url") is None:
            self._missing((*path, "url"), 'the http(s) URL to POST to, e.g. '
                                          'url = "https://ops.example/hook"')
        else:
            url = self._text(table["url"], (*path, "url"), max_len=2048)
            if url.strip() and len(url) <= 2048 and not _is_http_url(url):
                self.err((*path, "url"), f"{_show(url)} is not an http:// or https:// URL "
                                         "with a host")
        secret = ""
        if table.get("secret") is None:
            self._missing((*path, "secret"), f"an HMAC key of at least {MIN_SECRET} characters")
        else:
            secret = self._text(table["secret"], (*path, "secret"), max_len=1024)
            if 0 < len(secret) < MIN_SECRET:
                self.err((*path, "secret"), f"is {len(secret)} characters long; an HMAC key "
                                            f"needs at least {MIN_SECRET}")
        return WebhookChannelSpec(cid, url, secret)

    def _email_channel(self, cid: str, body: Mapping[str, Any],
                       path: _Path) -> EmailChannelSpec:
        table = self._table(body, path, ("kind", "host", "port", "sender", "to", "starttls"))
        table = table or {}
        host = ""
        if table.get("host") is None:
            self._missing((*path, "host"), 'the SMTP server, e.g. host = "127.0.0.1"')
        else:
            host = self._text(table["host"], (*path, "host"), max_len=253)
            if host.strip() and len(host) <= 253 and not _is_host(host):
                self.err((*path, "host"), f"{_show(host)} is not a host name or IP address")
        port = 0
        if table.get("port") is None:
            self._missing((*path, "port"), "the SMTP port, e.g. port = 25")
        elif not _is_int(table["port"]) or not 1 <= table["port"] <= 65535:
            self.err((*path, "port"), f"must be a port number from 1 to 65535, "
                                      f"not {_got(table['port'])}")
        else:
            port = table["port"]
        sender = ""
        if table.get("sender") is None:
            self._missing((*path, "sender"),
                          'the From address, e.g. sender = "hotline@example.org"')
        else:
            sender = self._email(table["sender"], (*path, "sender"))
        to: tuple[str, ...] = ()
        if table.get("to") is None:
            self._missing((*path, "to"), "the recipients (to = [] if only the rung operators "
                                         "should get it)")
        else:
            to = self._strings(table["to"], (*path, "to"), self._email)
        starttls = False if table.get("starttls") is None else \
            self._bool(table["starttls"], (*path, "starttls"))
        return EmailChannelSpec(cid, host, port, sender, tuple(sorted(to)), starttls)

    def _chains(self, top: Mapping[str, Any]) -> dict[str, Chain]:
        chains: dict[str, Chain] = {}
        for role, raw in sorted(self._section(top, "chains").items()):
            path: _Path = ("chains", role)
            if role not in self.role_ids:
                self.err(path, f"undefined role {_show(role)}: a chain belongs to a role "
                               "defined under [roles]" + _suggest(role, self.role_ids))
            table = self._table(raw, path, ("steps", self._ms_key("repeat_every")))
            if table is None:
                continue
            repeat = self._duration(table, "repeat_every", path, default=None)
            chains[role] = Chain(role, self._steps(table.get("steps"), (*path, "steps")), repeat)
        return chains

    def _steps(self, raw: object, path: _Path) -> tuple[Step, ...]:
        if raw is None:
            self._missing(path, f"1 to {MAX_STEPS} steps ([[{_render_path(path)}]] tables)")
            return ()
        if not isinstance(raw, list | tuple):
            self.err(path, f"must be an array of tables ([[{_render_path(path)}]]), "
                           f"not {_got(raw)}")
            return ()
        if not raw:
            self.err(path, "a chain needs at least one step")
        elif len(raw) > MAX_STEPS:
            self.err(path, f"has {len(raw)} steps; at most {MAX_STEPS} are allowed")
        allowed = ("ring", "operators", "channels", self._ms_key("wait"))
        steps: list[Step] = []
        for i, item in enumerate(raw):
            step_path: _Path = (*path, i)
            table = self._table(item, step_path, allowed)
            if table is None:
                continue
            ring: tuple[str, ...] = ()
            if table.get("ring") is None:
                self._missing((*step_path, "ring"), 'the roles to ring, e.g. ring = ["duty"]')
            else:
                ring = self._strings(table["ring"], (*step_path, "ring"), self._role_ref)
            operators: tuple[str, ...] = ()
            if table.get("operators") is not None:
                operators = self._strings(table["operators"], (*step_path, "operators"),
                                          self._operator_ref)
            if isinstance(table.get("ring"), list | tuple) and not table["ring"] \
                    and not table.get("operators"):
                self.err((*step_path, "ring"), "rings nobody: name at least one role here, "
                                               "or operators in `operators`")
            channels: tuple[str, ...] = (CONSOLE,)
            if table.get("channels") is not None:
                channels = self._strings(table["channels"], (*step_path, "channels"),
                                         self._channel_ref,
                                         empty='no channel: leave it out for ["console"]')
            wait = self._duration(table, "wait", step_path, default=None, required=True)
            steps.append(Step(ring, operators, channels, wait or 0))
        return tuple(steps)

    def _links(self, top: Mapping[str, Any]) -> dict[str, LinkPolicy]:
        links: dict[str, LinkPolicy] = {}
        allowed = ("may_call", "accept", self._ms_key("deliver_within"), "late", "fallback")
        for peer, raw in sorted(self._section(top, "links").items()):
            path: _Path = ("links", peer)
            self._party(peer, path)
            table = self._table(raw, path, allowed)
            if table is None:
                continue
            may_call = self._role_map(table, "may_call", path, self._role_ref, self._their_role)
            accept = self._role_map(table, "accept", path, self._their_role, self._role_ref)
            deliver = self._duration(table, "deliver_within", path,
                                     default=DEFAULT_DELIVER_WITHIN_MS)
            late = "deliver" if table.get("late") is None else \
                self._choice(table["late"], (*path, "late"), LATE_POLICIES)
            fallback = self._fallbacks(table.get("fallback"), (*path, "fallback"))
            links[peer] = LinkPolicy(peer, may_call, accept, deliver or 0, late, fallback)
        return links

    def _role_map(self, table: Mapping[str, Any], key: str, path: _Path,
                  check_key: Callable[[str, _Path], bool],
                  check_item: Callable[[str, _Path], bool]) -> dict[str, tuple[str, ...]]:
        field_path = (*path, key)
        raw = table.get(key)
        if raw is None:
            self._missing(field_path, f"a table of role -> roles, e.g. {key} = "
                                      '{ duty = ["duty"] }, or {} for none')
            return {}
        out: dict[str, tuple[str, ...]] = {}
        for role, roles in sorted((self._table(raw, field_path, None) or {}).items()):
            check_key(role, (*field_path, role))
            out[role] = tuple(sorted(self._strings(roles, (*field_path, role), check_item)))
        return out

    def _fallbacks(self, raw: object, path: _Path) -> tuple[Fallback, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list | tuple):
            self.err(path, f"must be an array of tables ([[{_render_path(path)}]]), "
                           f"not {_got(raw)}")
            return ()
        fallbacks: list[Fallback] = []
        for i, item in enumerate(raw):
            fb_path: _Path = (*path, i)
            table = self._table(item, fb_path, ("on", "call", "alert", "notify"))
            if table is None:
                continue
            on: tuple[str, ...] = ()
            if table.get("on") is None:
                self._missing((*fb_path, "on"), f"the outcomes it handles, some of "
                                                f"{', '.join(OUTCOMES)}")
            else:
                on = self._strings(table["on"], (*fb_path, "on"), self._outcome,
                                   empty=f"name at least one of {', '.join(OUTCOMES)}")
            lists: dict[str, tuple[str, ...]] = {}
            for key, check in (("call", self._counterpart), ("alert", self._role_ref),
                               ("notify", self._party)):
                value = table.get(key)
                lists[key] = () if value is None else \
                    self._strings(value, (*fb_path, key), check)
            if not any(table.get(key) for key in ("call", "alert", "notify")):
                self.err(fb_path, "does nothing: give at least one of call, alert or notify")
            fallbacks.append(Fallback(tuple(sorted(on)), lists["call"],
                                      tuple(sorted(lists["alert"])),
                                      tuple(sorted(lists["notify"]))))
        return tuple(fallbacks)

    def _outcome(self, value: str, path: _Path) -> bool:
        if value in OUTCOMES:
            return True
        self._choice(value, path, OUTCOMES)
        return False

    def _counterpart(self, value: str, path: _Path) -> bool:
        role, at, party = value.partition("@")
        if not at or not ROLE_RE.fullmatch(role) or not PARTY_RE.fullmatch(party):
            self.err(path, f'{_show(value)} is not "role@PARTY" (e.g. "ccp-do@RU-GS")')
            return False
        return True
