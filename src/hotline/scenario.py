"""The Przewodów scenario's directories: roles, operators, rosters, chains, link policies.

Used by ``hotline demo`` and by the tests. Every scenario duration is divided by
``speed`` (``--speed 60``: a two-minute step takes two seconds), so the same scenario runs
in real time, in a demo, or in a test with sub-second deadlines.
"""

from __future__ import annotations

MINUTE_MS = 60_000

PARTIES = ("US-JS", "RU-GS", "UA-GS", "PL-GS")
LINKS = (("US-JS", "RU-GS"), ("US-JS", "UA-GS"), ("US-JS", "PL-GS"), ("PL-GS", "UA-GS"))

_ROLES: dict[str, list[tuple[str, str, str]]] = {
    # party: [(role, English title, own-language title)]
    "US-JS": [("cjcs", "Chairman of the Joint Chiefs of Staff", ""),
              ("vcjcs", "Vice Chairman of the Joint Chiefs of Staff", ""),
              ("nmcc-do", "NMCC duty officer", "")],
    "RU-GS": [("cgs", "Chief of the General Staff", "Начальник Генерального штаба"),
              ("cgs-1d", "First Deputy Chief of the General Staff",
               "Первый заместитель начальника Генерального штаба"),
              ("ccp-do", "Duty officer, Central Command Post",
               "Оперативный дежурный Центрального командного пункта"),
              ("dcd", "Deconfliction line duty desk", "Дежурный линии деконфликтации")],
    "UA-GS": [("cinc", "Commander-in-Chief", "Головнокомандувач"),
              ("cgs", "Chief of the General Staff", "Начальник Генерального штабу"),
              ("do", "Duty officer", "Черговий")],
    "PL-GS": [("cgs", "Chief of the General Staff", "Szef Sztabu Generalnego"),
              ("ops-do", "Operations duty officer", "Oficer dyżurny operacyjny")],
}
_LANG = {"US-JS": "en", "RU-GS": "ru", "UA-GS": "uk", "PL-GS": "pl"}
#: Arabic titles too, so a console operator reading Arabic sees every desk in Arabic
_ARABIC = {
    ("US-JS", "cjcs"): "رئيس هيئة الأركان المشتركة",
    ("US-JS", "vcjcs"): "نائب رئيس هيئة الأركان المشتركة",
    ("US-JS", "nmcc-do"): "الضابط المناوب في مركز القيادة العسكرية الوطني",
    ("RU-GS", "cgs"): "رئيس هيئة الأركان العامة",
    ("RU-GS", "cgs-1d"): "النائب الأول لرئيس هيئة الأركان العامة",
    ("RU-GS", "ccp-do"): "الضابط المناوب في مركز القيادة المركزي",
    ("RU-GS", "dcd"): "مكتب مناوبة خط منع الاشتباك",
    ("UA-GS", "cinc"): "القائد العام",
    ("UA-GS", "cgs"): "رئيس هيئة الأركان العامة",
    ("UA-GS", "do"): "الضابط المناوب",
    ("PL-GS", "cgs"): "رئيس هيئة الأركان العامة",
    ("PL-GS", "ops-do"): "ضابط العمليات المناوب",
}

# (operator, name, role, status): who holds which role and whether they are on duty
_OPERATORS: dict[str, list[tuple[str, str, str, str]]] = {
    "US-JS": [("cjcs-1", "Chairman", "cjcs", "on-duty"),
              ("vcjcs-1", "Vice Chairman", "vcjcs", "on-duty"),
              ("nmcc-1", "NMCC duty officer", "nmcc-do", "on-duty")],
    "RU-GS": [("cgs-1", "Chief of the General Staff", "cgs", "off-duty"),
              ("cgs1d-1", "First Deputy", "cgs-1d", "unavailable"),
              ("ccp-1", "CCP duty officer", "ccp-do", "on-duty"),
              ("dcd-1", "Deconfliction desk officer", "dcd", "on-duty")],
    "UA-GS": [("cinc-1", "Commander-in-Chief", "cinc", "on-duty"),
              ("cgs-1", "Chief of the General Staff", "cgs", "on-duty"),
              ("do-1", "Duty officer", "do", "on-duty")],
    "PL-GS": [("cgs-1", "Chief of the General Staff", "cgs", "on-duty"),
              ("opsdo-1", "Operations duty officer", "ops-do", "on-duty")],
}

# principal -> deputy -> duty officer (the duty officer repeats)
_CHAINS: dict[str, dict[str, list[str]]] = {
    "US-JS": {"cjcs": ["cjcs", "vcjcs", "nmcc-do"]},
    "RU-GS": {"cgs": ["cgs", "cgs-1d", "ccp-do"]},
    "UA-GS": {"cinc": ["cinc", "cgs", "do"]},
    "PL-GS": {"cgs": ["cgs", "ops-do"]},
}

# (caller party, callee party): {caller role: [callee roles]}
_MAY_CALL: dict[tuple[str, str], dict[str, list[str]]] = {
    ("US-JS", "RU-GS"): {"cjcs": ["cgs"], "nmcc-do": ["cgs", "cgs-1d", "ccp-do", "dcd"]},
    ("RU-GS", "US-JS"): {"cgs": ["cjcs"], "ccp-do": ["nmcc-do"]},
    ("US-JS", "UA-GS"): {"cjcs": ["cinc"], "nmcc-do": ["cinc", "do"]},
    ("UA-GS", "US-JS"): {"cinc": ["cjcs"], "do": ["nmcc-do"]},
    ("US-JS", "PL-GS"): {"cjcs": ["cgs"], "nmcc-do": ["cgs", "ops-do"]},
    ("PL-GS", "US-JS"): {"cgs": ["cjcs"], "ops-do": ["nmcc-do"]},
    ("PL-GS", "UA-GS"): {"cgs": ["cinc"], "ops-do": ["do"]},
    ("UA-GS", "PL-GS"): {"cinc": ["cgs"], "do": ["ops-do"]},
}


def _duration(scenario_ms: int, speed: float) -> str:
    return f"{max(1, round(scenario_ms / speed))}ms"


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def directory_toml(party: str, speed: float = 1.0, deliver_within_ms: int | None = None) -> str:
    """The directory file of ``party`` in the scenario, durations divided by ``speed``
    (``deliver_within_ms`` overrides the links' delivery deadline, in real time)."""
    if party not in _ROLES:
        raise ValueError(f"{party} is not a party of the scenario")
    if speed <= 0:
        raise ValueError("speed must be positive")
    lang = _LANG[party]
    lines = ["# Przewodów scenario directory for " + party, "",
             "[settings]", f'staffed_within = "{_duration(5 * MINUTE_MS, speed)}"', ""]
    for role, title, own in _ROLES[party]:
        titles = f"en = {_q(title)}" + (f", {lang} = {_q(own)}" if own else "") \
            + f", ar = {_q(_ARABIC[party, role])}"
        lines += [f"[roles.{role}]", f"title = {{ {titles} }}", ""]
    for op, name, role, _status in _OPERATORS[party]:
        lines += [f'[operators."{op}"]', f"name = {_q(name)}", f'roles = ["{role}"]',
                  f'language = "{lang}"', ""]
    for op, _name, role, status in _OPERATORS[party]:
        lines += ["[[roster]]", f'operator = "{op}"', f'role = "{role}"',
                  f'status = "{status}"', ""]
    for role, steps in _CHAINS[party].items():
        lines += [f"[chains.{role}]", f'repeat_every = "{_duration(MINUTE_MS, speed)}"', ""]
        for index, ring in enumerate(steps):
            wait = MINUTE_MS if index == len(steps) - 1 else 2 * MINUTE_MS
            lines += [f"[[chains.{role}.steps]]", f'ring = ["{ring}"]',
                      f'wait = "{_duration(wait, speed)}"', ""]
    for a, b in LINKS:
        if party not in (a, b):
            continue
        peer = b if party == a else a
        lines += _policy(party, peer, speed, deliver_within_ms)
    return "\n".join(lines) + "\n"


def _inline(table: dict[str, list[str]]) -> str:
    return "{ " + ", ".join(f'"{k}" = [' + ", ".join(f'"{v}"' for v in vs) + "]"
                            for k, vs in table.items()) + " }"


def _policy(party: str, peer: str, speed: float, deliver_within_ms: int | None) -> list[str]:
    may_call = _MAY_CALL.get((party, peer), {})
    accept: dict[str, list[str]] = {}
    for their_role, ours in _MAY_CALL.get((peer, party), {}).items():
        accept[their_role] = ours
    lines = [f"[links.{peer}]", f"may_call = {_inline(may_call)}", f"accept = {_inline(accept)}",
             'deliver_within = "' + (f"{deliver_within_ms}ms" if deliver_within_ms
                                     else _duration(MINUTE_MS // 2, speed)) + '"',
             'late = "deliver"', ""]
    if (party, peer) == ("US-JS", "RU-GS"):
        lines += ["[[links.RU-GS.fallback]]", 'on = ["unanswered", "undeliverable"]',
                  'call = ["dcd@RU-GS"]', 'alert = ["cjcs"]', 'notify = ["PL-GS"]', ""]
    return lines


def on_duty_operators(party: str) -> list[str]:
    """The operators the scenario has on duty at ``party`` (the demo keeps them present)."""
    return [op for op, _name, _role, status in _OPERATORS[party] if status == "on-duty"]
