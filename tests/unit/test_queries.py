"""Attribution queries without a node: the signed answer statement, the ``call.place``
query field, the asker's state machine (hypothesis), deadlines, answers and status."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.calls import queries
from hotline.calls.service import PlaceRequest
from hotline.errors import HotlineError
from hotline.protocol import canonical
from hotline.protocol.keys import PartyKeys
from hotline.protocol.signing import sign_object
from hotline.protocol.statement import (
    CALL_DOMAIN,
    CALL_STATES,
    QUERY_ANSWERS,
    BadStatement,
    sign_call_state,
    verify_call_state,
)

KEYS, OTHER = PartyKeys.generate(), PartyKeys.generate()
CALL = "c" * 32
ANSWERS = st.sampled_from(QUERY_ANSWERS)
# text a statement can carry: no NUL, no lone surrogate (UTF-8 cannot encode it; the
# service refuses it before signing, see test_details_with_a_lone_surrogate_are_refused)
DETAILS = st.none() | st.text(st.characters(exclude_characters="\x00",
                                            exclude_categories=("Cs",)), max_size=200)


def _answer(answer: str, details: str | None, keys: PartyKeys = KEYS) -> str:
    return sign_call_state(call=CALL, signer="RU-GS", n=7, state="answered", at=1234,
                           caller="nmcc-do@US-JS", callee="cgs@RU-GS", keys=keys,
                           role="ccp-do", operator="ccp-1", answer=answer,
                           details=details).raw


@settings(max_examples=60, deadline=None)
@given(ANSWERS, DETAILS)
def test_answer_round_trips_signed(answer: str, details: str | None) -> None:
    stmt = verify_call_state(_answer(answer, details), signer="RU-GS", public=KEYS.public,
                             call=CALL)
    assert (stmt.state, stmt.answer, stmt.details) == ("answered", answer, details)
    assert stmt.as_dict()["answer"] == answer
    with pytest.raises(BadStatement):
        verify_call_state(_answer(answer, details), signer="RU-GS", public=OTHER.public)


@settings(max_examples=60, deadline=None)
@given(ANSWERS, ANSWERS, DETAILS)
def test_a_changed_answer_does_not_verify(answer: str, other: str,
                                          details: str | None) -> None:
    """"will not answer" cannot be turned into another answer (or back) after signing."""
    obj = json.loads(_answer(answer, details))
    obj["answer"]["answer"] = other
    raw = canonical.encode(obj).decode()
    if other == answer:
        assert verify_call_state(raw, signer="RU-GS", public=KEYS.public).answer == answer
    else:
        with pytest.raises(BadStatement):
            verify_call_state(raw, signer="RU-GS", public=KEYS.public)


def _signed(obj: dict[str, object]) -> str:
    return canonical.encode(sign_object(CALL_DOMAIN, obj, KEYS)).decode()


@pytest.mark.parametrize("bad", [
    {"answer": "maybe", "details": None},             # not one of the four
    {"answer": "yes"},                                 # details missing
    {"answer": "yes", "details": 5},                   # details not text
    {"answer": "yes", "details": "x" * 2001},          # details too long
    "yes",                                             # not an object
])
def test_malformed_answers_refused_even_when_signed(bad: object) -> None:
    obj = json.loads(_answer("yes", None))
    del obj["sig"]
    obj["answer"] = bad
    with pytest.raises(BadStatement, match=r"answer|wrong"):
        verify_call_state(_signed(obj), signer="RU-GS", public=KEYS.public)


def test_an_answer_only_on_an_answered_statement() -> None:
    obj = json.loads(_answer("no", None))
    del obj["sig"]
    obj["state"] = "unanswered"
    with pytest.raises(BadStatement, match="answer"):
        verify_call_state(_signed(obj), signer="RU-GS", public=KEYS.public)
    with pytest.raises(ValueError, match="answer"):
        sign_call_state(call=CALL, signer="RU-GS", n=1, state="declined", at=1,
                        caller="a@US-JS", callee="b@RU-GS", keys=KEYS, answer="no")


def _place(query: object = None) -> dict[str, object]:
    payload: dict[str, object] = {"call": CALL, "caller_role": "nmcc-do",
                                  "callee_role": "cgs", "reason": None, "placed_at": 1,
                                  "budget_ms": None, "parent": None}
    if query is not None:
        payload["query"] = query
    return payload


def test_place_carries_a_query_or_none() -> None:
    assert PlaceRequest.parse(_place()).query is None
    got = PlaceRequest.parse(_place({"question": "Did you fire?", "deadline_ms": 60_000}))
    assert got.query == ("Did you fire?", 60_000)


@settings(max_examples=80, deadline=None)
@given(st.one_of(
    st.fixed_dictionaries({"question": st.text(max_size=5), "deadline_ms": st.integers()}),
    st.fixed_dictionaries({"question": st.integers(), "deadline_ms": st.integers()}),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=3),
    st.text(max_size=5), st.booleans()))
def test_place_refuses_malformed_queries(query: object) -> None:
    ok = (isinstance(query, dict) and set(query) == {"question", "deadline_ms"}
          and isinstance(query["question"], str) and 0 < len(query["question"]) <= 1000
          and type(query["deadline_ms"]) is int
          and 1000 <= query["deadline_ms"] <= 7 * 24 * 3600 * 1000)
    if ok:
        assert PlaceRequest.parse(_place(query)).query is not None
    else:
        with pytest.raises(ValueError, match="query"):
            PlaceRequest.parse(_place(query))


# -- the asker's state machine ------------------------------------------------------------
STATEMENT = st.tuples(st.sampled_from(sorted(CALL_STATES - {"placed", "fallback"})),
                      st.none() | ANSWERS)


def _run(start: str, statements: list[tuple[str, str | None]]) -> tuple[str, bool, int]:
    state, late, fallbacks = start, False, 0
    for stmt_state, answer in statements:
        if answer is not None:
            stmt_state = "answered"
        step = queries.asker_step(state, late, stmt_state, answer)
        state, late = step.state, step.late
        fallbacks += step.fall_back
    return state, late, fallbacks


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["placed", "unanswered"]), st.lists(STATEMENT, max_size=12))
def test_asker_ends_once_and_falls_back_at_most_once(start: str,
                                                     statements: list[tuple[str, str | None]]
                                                     ) -> None:
    state, late, fallbacks = _run(start, statements)
    ours_first = start == "unanswered"  # we recorded it at our deadline (and fell back)
    assert fallbacks <= (0 if ours_first else 1)
    if ours_first:
        assert state == "unanswered"  # what we recorded stands
    first_end = next((s if a is None else "answered" for s, a in statements
                      if (s if a is None else "answered") in queries.ENDED), None)
    if not ours_first and first_end is not None and first_end != "cancelled":
        assert state == first_end  # the first end the callee signed is the state
    # after our own unanswered, any answer is late; an answer that ends it first is not
    if ours_first:
        assert late == any(a is not None for _s, a in statements)
    elif first_end == "answered":
        assert not late


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(CALL_STATES)), st.none() | ANSWERS, st.booleans())
def test_status_separates_will_not_answer_from_unanswered(state: str, answer: str | None,
                                                          late: bool) -> None:
    status = queries.status(state, answer, late)
    assert status in queries.STATUSES
    if answer == "will-not-answer":
        assert status == ("answered-late" if late else "will-not-answer")
    if answer is None:
        assert status not in ("will-not-answer", "answered", "answered-late")
        assert (status == "unanswered") == (state == "unanswered")


@pytest.mark.parametrize(("text", "ms"), [("30m", 1_800_000), ("90s", 90_000),
                                          ("2h", 7_200_000), ("1d", 86_400_000),
                                          ("1500ms", 1500), ("45", 45_000)])
def test_deadlines(text: str, ms: int) -> None:
    assert queries.parse_deadline(text) == ms


@pytest.mark.parametrize("text", ["", "soon", "-5m", "0s", "999ms", "8d", "30 minutes"])
def test_bad_deadlines_name_the_field(text: str) -> None:
    with pytest.raises(HotlineError, match="deadline") as err:
        queries.parse_deadline(text)
    assert err.value.error_id == "bad-deadline"


def test_bad_question_and_answer_name_the_field() -> None:
    for call, field in ((lambda: queries.check_question("  "), "question"),
                        (lambda: queries.check_question("x" * 1001), "question"),
                        (lambda: queries.check_answer("maybe", None), "answer"),
                        (lambda: queries.check_answer("no", "x" * 2001), "details")):
        with pytest.raises(HotlineError, match=f"^bad-{field}: {field}:") as err:
            call()
        assert err.value.error_id == f"bad-{field}"
    assert queries.check_answer("unknown", "  ") == ("unknown", None)


def test_details_and_questions_that_are_not_text_are_refused_before_signing() -> None:
    from hotline.calls.queries import check_answer, check_question
    from hotline.errors import HotlineError

    with pytest.raises(HotlineError) as caught:
        check_answer("unknown", "half a pair \ud800")
    assert caught.value.error_id == "bad-details"
    with pytest.raises(HotlineError) as caught:
        check_question("who fired \udfff?")
    assert caught.value.error_id == "bad-question"
