"""Bounds on numbers from outside: the helper for forms and headers takes exactly the
decimal numbers within its bounds and refuses everything else with a 422 naming the
field; a peer's signed counters beyond the 32-bit columns are malformed statements."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotline.bounds import INT32_MAX, INT64_MAX, parse_int
from hotline.errors import InvalidInput
from hotline.protocol.keys import PartyKeys
from hotline.protocol.statement import BadStatement, sign_call_state, verify_call_state

KEYS = PartyKeys.generate()


@given(st.integers(min_value=0, max_value=INT64_MAX))
def test_every_number_within_bounds_is_taken(number: int) -> None:
    assert parse_int(str(number), "form.after") == number


@given(st.integers().filter(lambda n: not 0 <= n <= INT64_MAX))
def test_every_number_outside_bounds_is_refused_naming_the_field(number: int) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_int(str(number), "header.Last-Event-ID")
    assert refused.value.status == 422
    assert refused.value.to_dict()["field"] == "header.Last-Event-ID"
    assert refused.value.error_id == "invalid-request"


@given(st.text().filter(lambda t: not (t.strip().isascii() and t.strip().isdigit())))
def test_anything_but_decimal_digits_is_refused(text: str) -> None:
    if not text.strip():  # absent: the default, or refused without one
        assert parse_int(text, "form.n", default=7) == 7
        with pytest.raises(InvalidInput):
            parse_int(text, "form.n")
        return
    with pytest.raises(InvalidInput):
        parse_int(text, "form.n")


@pytest.mark.parametrize("text", ["²", "١٢", "1_000", "+1", "0x10", "1e3", " 1 2"])
def test_lookalike_digits_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_int(text, "form.n")


def test_signed_bounds() -> None:
    assert parse_int("-5", "form.n", minimum=-10, maximum=10) == -5
    with pytest.raises(InvalidInput):
        parse_int("-5", "form.n")  # minimum 0: a sign is not a digit
    with pytest.raises(InvalidInput):
        parse_int("11", "form.n", minimum=-10, maximum=10)


@pytest.mark.parametrize(("n", "step", "taken"), [
    (INT32_MAX, INT32_MAX, True), (INT32_MAX + 1, 0, False), (1, INT32_MAX + 1, False),
    (-1, 0, False), (1, -1, False), (1, None, True)])
def test_call_statement_counters_fit_their_columns(n: int, step: int | None,
                                                   taken: bool) -> None:
    raw = sign_call_state(call="c" * 32, signer="RU-GS", n=n, state="ringing", at=1,
                          caller="nmcc-do@US-JS", callee="cgs@RU-GS", keys=KEYS,
                          step=step, role="cgs").raw
    if taken:
        assert verify_call_state(raw, signer="RU-GS", public=KEYS.public).n == n
    else:
        with pytest.raises(BadStatement, match="outside"):
            verify_call_state(raw, signer="RU-GS", public=KEYS.public)
