"""The node directory (roles, operators, roster, chains, channels, link policies).

The directory decides who rings when a peer calls; these tests pin down that the scenario's
RU-GS file means what it says, that every mistake is reported with its file, line and field
path (all of them at once, by line), and that the stored form reads back to the same thing.
"""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotline.calls.directory import (
    CONSOLE,
    DAY_MS,
    LANGUAGES,
    MAX_PROBLEMS,
    OUTCOMES,
    STATUSES,
    Chain,
    Directory,
    DirectoryError,
    EmailChannelSpec,
    Fallback,
    LinkPolicy,
    Operator,
    Problem,
    Role,
    RosterEntry,
    Step,
    WebhookChannelSpec,
    default_chain,
    parse_directory,
    parse_duration,
)
from hotline.errors import HotlineError

FILE = "roles.toml"


def toml(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def problems_of(text: str) -> DirectoryError:
    with pytest.raises(DirectoryError) as info:
        parse_directory(text, FILE)
    return info.value


# ======================================================================= the scenario

RU_GS = toml("""
    # RU General Staff (scenario: Przewodów, 15-16 November 2022)
    [settings]
    staffed_within = "5m"

    [roles.cgs]
    title = { en = "Chief of the General Staff", ru = "Начальник Генерального штаба" }

    [roles.cgs-1d]
    title = { en = "First Deputy Chief of the General Staff", ru = "Первый заместитель НГШ" }

    [roles.ccp-do]
    title.en = "Central Command Post duty officer"
    title.ru = "Оперативный дежурный ЦКП"

    [operators.gerasimov]
    name = "V. Gerasimov"
    roles = ["cgs"]
    language = "ru"
    email = "cgs@ru.example"

    [operators."ccp.ivanov"]
    name = "I. Ivanov"
    roles = ["ccp-do", "cgs-1d"]
    language = "ru"

    [[roster]]
    operator = "gerasimov"
    role = "cgs"
    status = "off-duty"
    from = 2022-11-15T00:00:00Z
    until = 2022-11-16T00:00:00Z

    [[roster]]
    operator = "ccp.ivanov"
    role = "ccp-do"
    status = "on-duty"

    [channels.ops-hook]
    kind = "webhook"
    url = "https://ops.ru.example/hook"
    secret = "at-least-16-characters"

    [channels.duty-mail]
    kind = "email"
    host = "127.0.0.1"
    port = 25
    sender = "hotline@ru.example"
    to = ["duty@ru.example"]
    starttls = false

    [chains.cgs]                # ring the principal, then the deputy, then the duty officer
    repeat_every = "1m"
    [[chains.cgs.steps]]
    ring = ["cgs"]
    wait = "2m"
    [[chains.cgs.steps]]
    ring = ["cgs-1d"]
    wait = "2m"
    [[chains.cgs.steps]]
    ring = ["ccp-do"]
    channels = ["console", "ops-hook", "duty-mail"]
    wait = "2m"

    [links.US-JS]
    may_call = { cgs = ["cjcs", "vcjcs", "nmcc-do"], ccp-do = ["nmcc-do"] }
    accept   = { nmcc-do = ["cgs"], cjcs = ["cgs"] }
    deliver_within = "30s"
    late = "deliver"
    [[links.US-JS.fallback]]
    on = ["unanswered", "undeliverable", "declined"]
    call = ["vcjcs@US-JS"]
    alert = ["cgs-1d"]
""")

RU_EXPECTED = Directory(
    staffed_within_ms=300_000,
    roles={
        "cgs": Role("cgs", {"en": "Chief of the General Staff",
                            "ru": "Начальник Генерального штаба"}),
        "cgs-1d": Role("cgs-1d", {"en": "First Deputy Chief of the General Staff",
                                  "ru": "Первый заместитель НГШ"}),
        "ccp-do": Role("ccp-do", {"en": "Central Command Post duty officer",
                                  "ru": "Оперативный дежурный ЦКП"}),
    },
    operators={
        "gerasimov": Operator("gerasimov", "V. Gerasimov", ("cgs",), "ru", "cgs@ru.example"),
        "ccp.ivanov": Operator("ccp.ivanov", "I. Ivanov", ("ccp-do", "cgs-1d"), "ru", None),
    },
    roster=(
        RosterEntry("gerasimov", "cgs", "off-duty", ms("2022-11-15T00:00:00+00:00"),
                    ms("2022-11-16T00:00:00+00:00")),
        RosterEntry("ccp.ivanov", "ccp-do", "on-duty", None, None),
    ),
    chains={
        "cgs": Chain("cgs", (
            Step(("cgs",), (), ("console",), 120_000),
            Step(("cgs-1d",), (), ("console",), 120_000),
            Step(("ccp-do",), (), ("console", "ops-hook", "duty-mail"), 120_000),
        ), 60_000),
    },
    channels={
        "ops-hook": WebhookChannelSpec("ops-hook", "https://ops.ru.example/hook",
                                       "at-least-16-characters"),
        "duty-mail": EmailChannelSpec("duty-mail", "127.0.0.1", 25, "hotline@ru.example",
                                      ("duty@ru.example",), False),
    },
    links={
        "US-JS": LinkPolicy(
            "US-JS",
            may_call={"cgs": ("cjcs", "nmcc-do", "vcjcs"), "ccp-do": ("nmcc-do",)},
            accept={"nmcc-do": ("cgs",), "cjcs": ("cgs",)},
            deliver_within_ms=30_000, late="deliver",
            fallback=(Fallback(("declined", "unanswered", "undeliverable"), ("vcjcs@US-JS",),
                               ("cgs-1d",), ()),)),
    },
)

NOV15 = ms("2022-11-15T14:40:00+00:00")


def test_the_scenario_directory_parses_to_what_it_says() -> None:
    assert parse_directory(RU_GS, FILE) == RU_EXPECTED


def test_the_scenario_chain_and_defaults() -> None:
    d = parse_directory(RU_GS, FILE)
    chain = d.chain_for("cgs")
    assert [s.ring for s in chain.steps] == [("cgs",), ("cgs-1d",), ("ccp-do",)]
    assert [s.wait_ms for s in chain.steps] == [120_000] * 3
    assert chain.repeat_every_ms == 60_000
    # a role without a chain rings just itself
    assert d.chain_for("ccp-do") == Chain("ccp-do", (Step(("ccp-do",), (), (CONSOLE,), 120_000),),
                                          60_000) == default_chain("ccp-do")
    with pytest.raises(HotlineError) as info:
        d.chain_for("cinc")
    assert info.value.error_id == "no-role"


def test_the_scenario_call_policy() -> None:
    d = parse_directory(RU_GS, FILE)
    assert d.accepts("US-JS", "nmcc-do", "cgs")
    assert not d.accepts("US-JS", "nmcc-do", "ccp-do")
    assert not d.accepts("PL-GS", "cgs", "cgs"), "no link: nothing accepted"
    assert d.may_call("cgs", "US-JS", "cjcs")
    assert not d.may_call("cgs-1d", "US-JS", "cjcs")
    assert d.policy_for("PL-GS") is None
    policy = d.policy_for("US-JS")
    assert policy is not None
    assert policy.deliver_within_ms == 30_000
    # at +20 min on 15 Nov the principal is off duty and the duty officer is on
    assert d.duty_status("gerasimov", "cgs", NOV15) == "off-duty"
    assert d.on_duty("cgs", NOV15) == ()
    assert d.on_duty("ccp-do", NOV15) == ("ccp.ivanov",)
    assert d.duty_status("ccp.ivanov", "cgs-1d", NOV15) == "off-duty", "no entry: off duty"


def test_minimal_directory_takes_the_defaults() -> None:
    d = parse_directory('[roles.duty]\ntitle = { en = "Duty officer" }\n', FILE)
    assert d.staffed_within_ms == 300_000
    assert (d.operators, d.roster, d.chains, d.channels, d.links) == ({}, (), {}, {}, {})


def test_link_defaults() -> None:
    d = parse_directory(toml("""
        [roles.duty]
        title = { en = "Duty" }
        [links.PL-GS]
        may_call = {}
        accept = { ops-do = ["duty"] }
    """), FILE)
    assert d.links["PL-GS"] == LinkPolicy("PL-GS", {}, {"ops-do": ("duty",)}, 30_000, "deliver",
                                          ())


# ======================================================================= bad inputs

ROLE = '[roles.cgs]\ntitle = { en = "Chief" }\n'  # lines 1-2 of most cases below
OPERATOR = '[operators.ivanov]\nname = "I. Ivanov"\nroles = ["cgs"]\n'  # lines 3-5 after ROLE

BAD: list[tuple[str, str, int | None, str, str]] = [
    ("wrong duration",
     ROLE + '[chains.cgs]\n[[chains.cgs.steps]]\nring = ["cgs"]\nwait = "2x"\n',
     6, "chains.cgs.steps[0].wait", '"2x" is not a duration (use e.g. "90s", "2m", "1h")'),
    ("duration without unit",
     ROLE + '[chains.cgs]\n[[chains.cgs.steps]]\nring = ["cgs"]\nwait = 120\n',
     6, "chains.cgs.steps[0].wait", "120 is not a duration"),
    ("zero duration",
     ROLE + '[chains.cgs]\nrepeat_every = "0s"\n[[chains.cgs.steps]]\nring = ["cgs"]\n'
     'wait = "1m"\n',
     4, "chains.cgs.repeat_every", '"0s" is not longer than zero'),
    ("duration over a day",
     ROLE + '[chains.cgs]\n[[chains.cgs.steps]]\nring = ["cgs"]\nwait = "25h"\n',
     6, "chains.cgs.steps[0].wait", "longer than the limit of 24h"),
    ("missing wait points at the step header",
     ROLE + '[chains.cgs]\n[[chains.cgs.steps]]\nring = ["cgs"]\n',
     4, "chains.cgs.steps[0].wait", "missing"),
    ("unknown field",
     ROLE + 'titel = "Chief"\n',
     3, "roles.cgs.titel", 'unknown field "titel" (did you mean "title"?)'),
    ("unknown top-level section",
     ROLE + '[role.x]\n',
     3, "role", "unknown field"),
    ("unknown field in an inline table",
     '[roles.cgs]\ntitle = { en = "Chief", de = "Chef" }\n',
     2, "roles.cgs.title.de", 'unknown language "de"'),
    ("english title required",
     '[roles.cgs]\ntitle = { ru = "Начальник" }\n',
     2, "roles.cgs.title.en", "missing"),
    ("title too long",
     f'[roles.cgs]\ntitle.en = "{"x" * 121}"\n',
     2, "roles.cgs.title.en", "121 characters"),
    ("undefined role in a step",
     ROLE + '[chains.cgs]\n[[chains.cgs.steps]]\nring = ["cgs",\n  "cgs-1d"]\nwait = "2m"\n',
     6, "chains.cgs.steps[0].ring[1]", 'undefined role "cgs-1d"'),
    ("undefined operator in a step",
     ROLE + '[chains.cgs]\n[[chains.cgs.steps]]\nring = []\noperators = ["ghost"]\n'
     'wait = "2m"\n',
     6, "chains.cgs.steps[0].operators[0]", 'undefined operator "ghost"'),
    ("undefined channel in a step",
     ROLE + '[chains.cgs]\n[[chains.cgs.steps]]\nring = ["cgs"]\nchannels = ["sms"]\n'
     'wait = "2m"\n',
     6, "chains.cgs.steps[0].channels[0]", 'undefined channel "sms"'),
    ("a step that rings nobody",
     ROLE + '[chains.cgs]\n[[chains.cgs.steps]]\nring = []\nwait = "2m"\n',
     5, "chains.cgs.steps[0].ring", "rings nobody"),
    ("empty steps",
     ROLE + '[chains.cgs]\nsteps = []\n',
     4, "chains.cgs.steps", "at least one step"),
    ("missing steps",
     ROLE + '[chains.cgs]\nrepeat_every = "1m"\n',
     3, "chains.cgs.steps", "missing"),
    ("chain for an undefined role",
     ROLE + '[[chains.cdr.steps]]\nring = ["cgs"]\nwait = "2m"\n',
     3, "chains.cdr", 'undefined role "cdr"'),
    ("operator role undefined",
     ROLE + '[operators.ivanov]\nname = "I. Ivanov"\nroles = ["cgs", "cgs1"]\n',
     5, "operators.ivanov.roles[1]", 'undefined role "cgs1" (did you mean "cgs"?)'),
    ("operator role listed twice",
     ROLE + '[operators.ivanov]\nname = "I. Ivanov"\nroles = ["cgs", "cgs"]\n',
     5, "operators.ivanov.roles[1]", '"cgs" is listed twice'),
    ("operator without roles",
     ROLE + '[operators.ivanov]\nname = "I. Ivanov"\nroles = []\n',
     5, "operators.ivanov.roles", "at least one role"),
    ("bad operator id, quoted",
     ROLE + '[operators."I Ivanov"]\nname = "I. Ivanov"\nroles = ["cgs"]\n',
     3, 'operators."I Ivanov"', "not a valid operator id"),
    ("bad e-mail",
     ROLE + OPERATOR + 'email = "ivanov at ru"\n',
     6, "operators.ivanov.email", "does not look like an e-mail address"),
    ("roster role not held",
     '[roles.cgs]\ntitle.en = "Chief"\n[roles.do]\ntitle.en = "Duty"\n'
     '[operators.ivanov]\nname = "I. Ivanov"\nroles = ["cgs"]\n'
     '[[roster]]\noperator = "ivanov"\nrole = "do"\nstatus = "on-duty"\n',
     10, "roster[0].role", 'operator "ivanov" does not hold role "do" (their roles: cgs)'),
    ("roster operator undefined",
     ROLE + OPERATOR + '[[roster]]\noperator = "petrov"\nrole = "cgs"\nstatus = "on-duty"\n',
     7, "roster[0].operator", 'undefined operator "petrov"'),
    ("roster status",
     ROLE + OPERATOR + '[[roster]]\noperator = "ivanov"\nrole = "cgs"\nstatus = "asleep"\n',
     9, "roster[0].status", '"asleep" is not one of "on-duty", "off-duty", "unavailable"'),
    ("naive datetime",
     ROLE + OPERATOR + '[[roster]]\noperator = "ivanov"\nrole = "cgs"\nstatus = "on-duty"\n'
     'from = 2022-11-15T00:00:00\n',
     10, "roster[0].from", "needs a timezone"),
    ("datetime as a string",
     ROLE + OPERATOR + '[[roster]]\noperator = "ivanov"\nrole = "cgs"\nstatus = "on-duty"\n'
     'from = "2022-11-15T00:00:00Z"\n',
     10, "roster[0].from", "without quotes"),
    ("until before from",
     ROLE + OPERATOR + '[[roster]]\noperator = "ivanov"\nrole = "cgs"\nstatus = "on-duty"\n'
     'from = 2022-11-16T00:00:00Z\nuntil = 2022-11-16T00:30:00+01:00\n',
     11, "roster[0].until", "2022-11-15T23:30:00Z is not after from (2022-11-16T00:00:00Z)"),
    ("bad party id",
     ROLE + '[links.us-js]\nmay_call = {}\naccept = {}\n',
     3, "links.us-js", '"us-js" is not a valid party id'),
    ("party id ending in a dash",
     ROLE + '[links."US-"]\nmay_call = {}\naccept = {}\n',
     3, "links.US-", "not a valid party id"),
    ("bad role id",
     '[roles.Chief_Of_Staff]\ntitle = { en = "Chief" }\n',
     1, "roles.Chief_Of_Staff", "is not a valid role id"),
    ("no roles at all",
     '[settings]\nstaffed_within = "5m"\n',
     None, "roles", "missing: at least one role"),
    ("redefining console",
     ROLE + '[channels.console]\nkind = "webhook"\nurl = "https://x.example"\n'
     'secret = "0123456789abcdef"\n',
     3, "channels.console", '"console" is built in'),
    ("channel kind",
     ROLE + '[channels.pager]\nkind = "sms"\n',
     4, "channels.pager.kind", '"sms" is not a channel kind'),
    ("webhook url",
     ROLE + '[channels.hook]\nkind = "webhook"\nurl = "ftp://x.example"\n'
     'secret = "0123456789abcdef"\n',
     5, "channels.hook.url", "not an http:// or https:// URL"),
    ("webhook secret",
     ROLE + '[channels.hook]\nkind = "webhook"\nurl = "https://x.example"\nsecret = "short"\n',
     6, "channels.hook.secret", "at least 16"),
    ("email port",
     ROLE + '[channels.mail]\nkind = "email"\nhost = "mx.example"\nport = 0\n'
     'sender = "a@b.example"\nto = []\n',
     6, "channels.mail.port", "from 1 to 65535"),
    ("email field unknown to the kind",
     ROLE + '[channels.mail]\nkind = "email"\nhost = "mx.example"\nport = 25\n'
     'sender = "a@b.example"\nto = []\nurl = "https://x.example"\n',
     9, "channels.mail.url", "unknown field"),
    ("may_call from an undefined role",
     ROLE + '[links.US-JS]\nmay_call = { cgs = ["cjcs"], cdr = ["cjcs"] }\naccept = {}\n',
     4, "links.US-JS.may_call.cdr", 'undefined role "cdr"'),
    ("their role id syntax",
     ROLE + '[links.US-JS]\nmay_call = { cgs = ["CJCS"] }\naccept = {}\n',
     4, "links.US-JS.may_call.cgs[0]", '"CJCS" is not a valid role id'),
    ("accept into an undefined role",
     ROLE + '[links.US-JS]\nmay_call = {}\naccept = { cjcs = ["ccp-do"] }\n',
     5, "links.US-JS.accept.cjcs[0]", 'undefined role "ccp-do"'),
    ("late policy",
     ROLE + '[links.US-JS]\nmay_call = {}\naccept = {}\nlate = "drop"\n',
     6, "links.US-JS.late", '"drop" is not one of "deliver", "expire"'),
    ("fallback outcome",
     ROLE + '[links.US-JS]\nmay_call = {}\naccept = {}\n[[links.US-JS.fallback]]\n'
     'on = ["busy"]\nalert = ["cgs"]\n',
     7, "links.US-JS.fallback[0].on[0]", '"busy" is not one of'),
    ("fallback counterpart",
     ROLE + '[links.US-JS]\nmay_call = {}\naccept = {}\n[[links.US-JS.fallback]]\n'
     'on = ["declined"]\ncall = ["vcjcs"]\n',
     8, "links.US-JS.fallback[0].call[0]", 'is not "role@PARTY"'),
    ("fallback that does nothing",
     ROLE + '[links.US-JS]\nmay_call = {}\naccept = {}\n[[links.US-JS.fallback]]\n'
     'on = ["declined"]\n',
     6, "links.US-JS.fallback[0]", "does nothing"),
    ("wrong type for a section",
     'roster = "none"\n' + ROLE,
     1, "roster", "must be an array of tables"),
    ("settings duration",
     '[settings]\nstaffed_within = "5 min"\n' + ROLE,
     2, "settings.staffed_within", '"5 min" is not a duration'),
]


@pytest.mark.parametrize(("text", "line", "field", "fragment"),
                         [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_a_bad_directory_names_file_line_and_field(text: str, line: int | None, field: str,
                                                   fragment: str) -> None:
    error = problems_of(text)
    assert error.error_id == "bad-directory"
    where = f"{FILE}:{line}" if line is not None else FILE
    lines = [row for row in error.message.splitlines() if row.startswith(f"{where}: {field}: ")]
    assert lines, f"nothing at {where} {field} in:\n{error.message}"
    assert any(fragment in row for row in lines), error.message
    assert any(p.line == line and p.field == field for p in error.problems)


def test_the_duration_message_reads_exactly_as_documented() -> None:
    text = ROLE + ("\n" * 5) + '[chains.cgs]\n[[chains.cgs.steps]]\nring = ["cgs"]\nwait = "2x"\n'
    assert problems_of(text).message == \
        'roles.toml:11: chains.cgs.steps[0].wait: "2x" is not a duration (use e.g. "90s", ' \
        '"2m", "1h")'


def test_a_toml_syntax_error_keeps_its_line() -> None:
    error = problems_of(ROLE + '[chains.cgs]\nrepeat_every = = "1m"\n')
    assert error.problems == [Problem(4, "", "invalid TOML: Invalid value (column 16)")]
    assert error.message == "roles.toml:4: invalid TOML: Invalid value (column 16)"
    unclosed = problems_of('[roles.cgs]\ntitle = { en = "Chief"\n')
    assert unclosed.problems[0].line == 2


def test_all_problems_are_reported_together_sorted_by_line() -> None:
    # The checks run section by section (roles, channels, operators, roster, chains, links),
    # but the file puts links first: the report must still read top to bottom.
    text = toml("""
        [links.us]
        may_call = { cgs = ["cjcs"] }
        accept = {}
        [[chains.cgs.steps]]
        ring = ["cgs", "ghost"]
        wait = "2x"
        [roles.cgs]
        title = { en = "Chief" }
        colour = "red"
        [operators.ivanov]
        name = "I. Ivanov"
        roles = ["cgs", "do"]
        [channels.console]
        kind = "email"
    """)
    error = problems_of(text)
    assert [(p.line, p.field) for p in error.problems] == [
        (1, "links.us"),
        (5, "chains.cgs.steps[0].ring[1]"),
        (6, "chains.cgs.steps[0].wait"),
        (9, "roles.cgs.colour"),
        (12, "operators.ivanov.roles[1]"),
        (13, "channels.console"),
    ]
    assert error.message.splitlines() == [p.render(FILE) for p in error.problems]


def test_at_most_fifty_problems_are_listed() -> None:
    text = ROLE + "".join(f'[operators.op{i}]\nname = "x"\nroles = ["nope"]\n' for i in range(60))
    error = problems_of(text)
    assert len(error.problems) == MAX_PROBLEMS
    assert error.message.splitlines()[-1] == f"{FILE}: ... and 10 more problems"
    assert [p.line for p in error.problems] == sorted(p.line or 0 for p in error.problems)


def test_lines_are_found_past_strings_comments_and_multiline_values() -> None:
    # A multi-line string holding a fake header, comments with brackets, quoted and dotted
    # keys, an array across lines and an inline array of tables must not shift any line.
    text = toml('''
        # [roles.fake] only a comment
        "roles" . cgs . title = { en = "Chief \\" ] } # not a comment", 'ru' = 'x' }
        [ operators . "op.1" ]   # blanks and a quoted key
        name = """
        [roles.not-a-header]
        wait = "1m"
        """
        language = "xx"
        roles = [
          "cgs",   # first
          'b]',
        ]
        [links.US-JS]
        may_call = {}
        accept = {}
        fallback = [ { on = ["declined"], alert = ["cgs"] },
          { on = ["late"], alert = ["cgs"] } ]
    ''')
    error = problems_of(text)
    assert [(p.line, p.field) for p in error.problems] == [
        (8, 'operators."op.1".language'),
        (11, 'operators."op.1".roles[1]'),
        (17, "links.US-JS.fallback[1].on[0]"),
    ]


def test_missing_fields_point_at_their_table_header() -> None:
    text = ROLE + '\n[operators.ivanov]\nlanguage = "ru"\n'
    error = problems_of(text)
    assert [(p.line, p.field) for p in error.problems] == [
        (4, "operators.ivanov.name"), (4, "operators.ivanov.roles")]


# ======================================================================= durations

def test_parse_duration_examples() -> None:
    assert parse_duration("250ms") == 250
    assert parse_duration("90s") == 90_000
    assert parse_duration("2m") == 120_000
    assert parse_duration("1h") == 3_600_000
    for bad in ["", "2", "2x", "1.5m", "2m30s", " 2m", "2 m", "-1s", "2M", "\u0661\u0662s", "2m\n"]:
        with pytest.raises(ValueError, match="is not a duration"):
            parse_duration(bad)


@given(n=st.integers(0, 10**9), unit=st.sampled_from(["ms", "s", "m", "h"]))
def test_parse_duration_is_number_times_unit(n: int, unit: str) -> None:
    factor = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}[unit]
    assert parse_duration(f"{n}{unit}") == n * factor


@given(text=st.text(max_size=12))
def test_parse_duration_accepts_only_digits_and_a_unit(text: str) -> None:
    try:
        value = parse_duration(text)
    except ValueError:
        return
    assert text.rstrip("mhs").isdigit()
    assert text.isascii()
    assert value >= 0


# ======================================================================= duty

def test_duty_status_last_covering_entry_wins() -> None:
    h = 3_600_000
    day = ms("2022-11-15T00:00:00+00:00")
    d = parse_directory(toml("""
        [roles.cgs]
        title.en = "Chief"
        [operators.a]
        name = "A"
        roles = ["cgs"]
        [operators.b]
        name = "B"
        roles = ["cgs"]
        [operators.c]
        name = "C"
        roles = ["cgs"]
        [[roster]]          # A: on duty, standing
        operator = "a"
        role = "cgs"
        status = "on-duty"
        [[roster]]          # A: unavailable 10:00-12:00 (an exception carved out of it)
        operator = "a"
        role = "cgs"
        status = "unavailable"
        from = 2022-11-15T10:00:00Z
        until = 2022-11-15T12:00:00Z
        [[roster]]          # A: off duty 11:00-11:30, overlapping the exception
        operator = "a"
        role = "cgs"
        status = "off-duty"
        from = 2022-11-15T11:00:00Z
        until = 2022-11-15T11:30:00Z
        [[roster]]          # B: on duty from 11:00, no end
        operator = "b"
        role = "cgs"
        status = "on-duty"
        from = 2022-11-15T12:00:00+01:00
    """), FILE)
    assert d.duty_status("a", "cgs", day + 9 * h) == "on-duty"
    assert d.duty_status("a", "cgs", day + 10 * h) == "unavailable", "from is inclusive"
    assert d.duty_status("a", "cgs", day + 11 * h + 15 * 60_000) == "off-duty"
    assert d.duty_status("a", "cgs", day + 11 * h + 30 * 60_000) == "unavailable"
    assert d.duty_status("a", "cgs", day + 12 * h) == "on-duty", "until is exclusive"
    assert d.duty_status("c", "cgs", day + 12 * h) == "off-duty", "no entry: off duty"
    assert d.duty_status("a", "other", day) == "off-duty"
    assert d.on_duty("cgs", day + 9 * h) == ("a",)
    assert d.on_duty("cgs", day + 10 * h) == ()
    assert d.on_duty("cgs", day + 11 * h - 1) == ()
    assert d.on_duty("cgs", day + 11 * h) == ("b",)
    assert d.on_duty("cgs", day + 12 * h) == ("a", "b")


# ======================================================================= stored form

def test_to_dict_is_json_and_reads_back_equal() -> None:
    d = parse_directory(RU_GS, FILE)
    stored = json.loads(json.dumps(d.to_dict()))
    assert Directory.from_dict(stored) == d
    assert stored["chains"]["cgs"]["steps"][0] == {"channels": ["console"], "operators": [],
                                                   "ring": ["cgs"], "wait_ms": 120_000}


def test_to_dict_is_canonical() -> None:
    first = parse_directory(RU_GS, FILE).to_dict()
    assert json.dumps(first) == json.dumps(first, sort_keys=True), "keys sorted at every level"
    # the same file, sections in another order and set-like lists shuffled: the same dict
    shuffled = RU_GS.replace('roles = ["ccp-do", "cgs-1d"]', 'roles = ["cgs-1d", "ccp-do"]')
    blocks = shuffled.split("\n\n")
    again = parse_directory("\n\n".join([*blocks[4:], *blocks[:4]]), FILE).to_dict()
    assert json.dumps(again) == json.dumps(first)


CGS = {"cgs": {"title": {"en": "Chief"}}}
HOSTILE: list[Any] = [
    None, [], "roles", 7, {}, {"roles": []}, {"roles": {"cgs": None}},
    {"roles": {1: {"title": {"en": "x"}}}},
    {"roles": CGS, "roster": [None, 3]},
    {"roles": CGS, "settings": {"staffed_within_ms": True}},
    {"roles": CGS, "settings": {"staffed_within": "5m"}},
    {"roles": CGS, "chains": {"cgs": {"steps": [{"ring": ["cgs"], "wait_ms": 2.5}]}}},
    {"roles": CGS, "roster": [{"operator": "x", "role": "cgs", "status": "on-duty",
                               "from_ms": "2022-11-15T00:00:00Z"}]},
    {"roles": {"cgs": {"title": {"en": ["Chief"]}}}},
    {"roles": CGS, "links": {"US-JS": {"may_call": {"cgs": "cjcs"}, "accept": []}}},
]


@pytest.mark.parametrize("data", HOSTILE)
def test_from_dict_refuses_hostile_input_with_a_directory_error(data: Any) -> None:
    with pytest.raises(DirectoryError) as info:
        Directory.from_dict(data)
    assert info.value.error_id == "bad-directory"
    assert all(p.line is None for p in info.value.problems)


def test_from_dict_names_the_stored_field() -> None:
    stored = parse_directory(RU_GS, FILE).to_dict()
    stored["chains"]["cgs"]["steps"][1]["wait_ms"] = "2m"
    stored["roster"][0]["from_ms"] = 10**20
    stored["roster"][1]["shift"] = 1
    with pytest.raises(DirectoryError) as info:
        Directory.from_dict(stored, source="directory.json")
    assert info.value.message.splitlines() == [
        'directory.json: roster[0].from_ms: is outside the years 1 to 9999 (UTC)',
        'directory.json: roster[1].shift: unknown field "shift" (allowed here: from_ms, '
        'operator, role, status, until_ms)',
        'directory.json: chains.cgs.steps[1].wait_ms: must be a whole number of '
        'milliseconds, not a string ("2m")',
    ]


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, (*path, i))
    return out


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_from_dict_of_damaged_input_never_crashes(data: st.DataObject) -> None:
    stored = parse_directory(RU_GS, FILE).to_dict()
    path = data.draw(st.sampled_from(_paths(stored)[1:]))
    replacement = data.draw(json_values)
    target = stored
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = replacement
    problems: list[Problem] = [Problem(None, "", "read back")]
    try:
        Directory.from_dict(stored)
    except DirectoryError as exc:  # the only exception allowed
        problems = exc.problems
    assert problems


# ======================================================================= generated directories

role_ids = st.from_regex(r"[a-z][a-z0-9-]{0,31}", fullmatch=True)
operator_ids = st.from_regex(r"[a-z][a-z0-9._-]{0,31}", fullmatch=True)
party_ids = st.from_regex(r"[A-Z0-9](?:[A-Z0-9-]{0,30}[A-Z0-9])?", fullmatch=True)
texts = st.text(min_size=1, max_size=120).filter(str.strip)
emails = st.from_regex(r"[a-z0-9.+_-]{1,12}@[a-z0-9]{1,10}\.example", fullmatch=True)
durations = st.integers(1, DAY_MS)
instants = st.integers(ms("1900-01-01T00:00:00+00:00"), ms("2200-01-01T00:00:00+00:00"))


def _subset(values: list[str], min_size: int = 0) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(values), min_size=min_size, unique=True) if values \
        else st.just([])


@st.composite
def directories(draw: st.DrawFn) -> Directory:
    roles = draw(st.lists(role_ids, min_size=1, max_size=4, unique=True))
    role_map = {}
    for rid in roles:
        langs = draw(_subset([lang for lang in LANGUAGES if lang != "en"]))
        role_map[rid] = Role(rid, {lang: draw(texts) for lang in ["en", *langs]})
    operators = {}
    for oid in draw(st.lists(operator_ids, max_size=3, unique=True)):
        held = tuple(sorted(draw(_subset(roles, 1))))
        operators[oid] = Operator(oid, draw(texts), held, draw(st.sampled_from(LANGUAGES)),
                                  draw(st.none() | emails))
    pairs = [(o.id, r) for o in operators.values() for r in o.roles]
    roster = []
    for _ in range(draw(st.integers(0, 4))) if pairs else ():
        operator, role = draw(st.sampled_from(pairs))
        start = draw(st.none() | instants)
        until = draw(st.none() | st.integers((start or 0) + 1, (start or 0) + 10 * DAY_MS))
        roster.append(RosterEntry(operator, role, draw(st.sampled_from(STATUSES)), start, until))
    channels: dict[str, Any] = {}
    for cid in draw(st.lists(role_ids.filter(lambda c: c != CONSOLE), max_size=2, unique=True)):
        channels[cid] = draw(st.one_of(
            st.builds(WebhookChannelSpec, st.just(cid),
                      st.from_regex(r"https?://[a-z]{1,10}\.example(:[1-9][0-9]{0,3})?/[a-z]*",
                                    fullmatch=True),
                      st.text(min_size=16, max_size=40).filter(str.strip)),
            st.builds(EmailChannelSpec, st.just(cid), st.just("mx.example"),
                      st.integers(1, 65535), emails,
                      st.lists(emails, unique=True, max_size=2).map(lambda v: tuple(sorted(v))),
                      st.booleans())))
    chains = {}
    for rid in draw(_subset(roles)):
        steps = []
        for _ in range(draw(st.integers(1, 3))):
            ring = draw(_subset(roles, 0 if operators else 1))
            ops = draw(_subset(list(operators), 0 if ring else 1))
            chans = draw(_subset([CONSOLE, *channels], 1))
            steps.append(Step(tuple(ring), tuple(ops), tuple(chans), draw(durations)))
        chains[rid] = Chain(rid, tuple(steps), draw(st.none() | durations))
    links = {}
    for peer in draw(st.lists(party_ids, max_size=2, unique=True)):
        theirs = st.lists(role_ids, max_size=3, unique=True).map(lambda v: tuple(sorted(v)))
        may_call = {rid: draw(theirs) for rid in draw(_subset(roles))}
        accept = {their: tuple(sorted(draw(_subset(roles))))
                  for their in draw(st.lists(role_ids, max_size=2, unique=True))}
        fallbacks = []
        for _ in range(draw(st.integers(0, 2))):
            call = draw(st.lists(st.tuples(role_ids, party_ids).map("@".join), unique=True,
                                 max_size=2))
            alert = sorted(draw(_subset(roles, 0 if call else 1)))
            notify = sorted(draw(st.lists(party_ids, unique=True, max_size=2)))
            fallbacks.append(Fallback(tuple(sorted(draw(_subset(list(OUTCOMES), 1)))),
                                      tuple(call), tuple(alert), tuple(notify)))
        links[peer] = LinkPolicy(peer, may_call, accept, draw(durations),
                                 draw(st.sampled_from(["deliver", "expire"])), tuple(fallbacks))
    return Directory(draw(durations), role_map, operators, tuple(roster), chains, channels,
                     links)


def _duration_text(value: int) -> str:
    for unit, factor in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if value % factor == 0:
            return f"{value // factor}{unit}"
    return f"{value}ms"


def _instant(value: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=value)


def render(d: Directory) -> str:
    """The directory written back as a file, for the parse round trip."""
    doc: dict[str, Any] = {
        "settings": {"staffed_within": _duration_text(d.staffed_within_ms)},
        "roles": {r.id: {"title": r.titles} for r in d.roles.values()},
        "operators": {o.id: {"name": o.name, "roles": list(o.roles), "language": o.language}
                      | ({"email": o.email} if o.email else {}) for o in d.operators.values()},
        "roster": [{"operator": e.operator, "role": e.role, "status": e.status}
                   | ({"from": _instant(e.from_ms)} if e.from_ms is not None else {})
                   | ({"until": _instant(e.until_ms)} if e.until_ms is not None else {})
                   for e in d.roster],
        "channels": {cid: {k: v for k, v in spec.__dict__.items() if k != "id"}
                     | {"kind": spec.kind} for cid, spec in d.channels.items()},
        "chains": {c.role: {"steps": [{"ring": list(s.ring), "operators": list(s.operators),
                                       "channels": list(s.channels),
                                       "wait": _duration_text(s.wait_ms)} for s in c.steps]}
                   | ({"repeat_every": _duration_text(c.repeat_every_ms)}
                      if c.repeat_every_ms is not None else {})
                   for c in d.chains.values()},
        "links": {p.peer: {"may_call": {k: list(v) for k, v in p.may_call.items()},
                           "accept": {k: list(v) for k, v in p.accept.items()},
                           "deliver_within": _duration_text(p.deliver_within_ms),
                           "late": p.late,
                           "fallback": [{k: list(v) for k, v in f.__dict__.items()}
                                        for f in p.fallback]}
                  for p in d.links.values()},
    }
    for spec in doc["channels"].values():
        if "to" in spec:
            spec["to"] = list(spec["to"])
    return tomli_w.dumps(doc)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(d=directories())
def test_generated_directories_round_trip_through_file_and_store(d: Directory) -> None:
    parsed = parse_directory(render(d), FILE)
    assert parsed == d
    stored = json.loads(json.dumps(parsed.to_dict()))
    assert Directory.from_dict(stored) == d
    assert Directory.from_dict(stored).to_dict() == stored
