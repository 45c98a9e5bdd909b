"""Link generations: disjoint sequence ranges, generation 0 as before."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotline.protocol.canonical import MAX_SAFE_INTEGER
from hotline.protocol.generation import GENERATION_BITS, MAX_GENERATION, first_seq, generation_of

generations = st.integers(min_value=0, max_value=MAX_GENERATION)
offsets = st.integers(min_value=0, max_value=2**GENERATION_BITS - 1)


def test_generation_zero_numbers_as_a_link_never_removed() -> None:
    assert first_seq(0) == 1
    assert generation_of(1) == 0
    assert generation_of(2**GENERATION_BITS) == 0
    assert generation_of(2**GENERATION_BITS + 1) == 1


@given(generations, offsets)
def test_every_seq_of_a_generation_maps_back_to_it(generation: int, offset: int) -> None:
    seq = first_seq(generation) + offset
    assert generation_of(seq) == generation
    assert seq <= MAX_SAFE_INTEGER  # the canonical encoding carries it


@given(generations, generations, offsets, offsets)
def test_generations_never_share_a_sequence_number(a: int, b: int, i: int, j: int) -> None:
    if a != b:
        assert first_seq(a) + i != first_seq(b) + j


@pytest.mark.parametrize("generation", [-1, MAX_GENERATION + 1])
def test_a_generation_outside_the_range_is_refused(generation: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        first_seq(generation)
