"""The state check's fast reading of ``sent``/``received`` entries agrees with a JSON
parser on every entry it reads, and declines the ones it cannot read."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from hotline.integrity.view import split_envelope
from hotline.store.log import Record, entry_bytes

ids = st.text(min_size=1, max_size=40)


@given(kind=st.sampled_from(["sent", "received"]), envelope_id=ids, peer=ids,
       seq=st.integers(0, 2**53), type_=ids, subject=st.one_of(st.none(), ids),
       named=st.booleans(), at=st.integers(-(2**40), 2**45), index=st.integers(0, 2**40))
def test_the_fast_reading_agrees_with_json(kind: str, envelope_id: str, peer: str, seq: int,
                                           type_: str, subject: str | None, named: bool,
                                           at: int, index: int) -> None:
    body: dict[str, object] = {"peer": peer, "id": envelope_id, "seq": seq, "type": type_,
                               "digest": "d" * 43}
    if named:
        body["subject"] = subject
    text = entry_bytes(index, Record(kind, body, at), "ab" * 32).decode()
    read = split_envelope(text)
    if read is None:
        return  # the caller parses it as JSON
    obj = json.loads(text)
    b = obj["body"]
    assert read == (b["id"], b["peer"], b["seq"], b["subject"], b["type"], obj["kind"])


def test_a_plain_entry_is_read_fast() -> None:
    text = entry_bytes(3, Record("sent", {"peer": "RU-GS", "id": "a" * 32, "seq": 9,
                                          "type": "message", "subject": "c" * 32,
                                          "digest": "d" * 43}, 1000), "ab" * 32).decode()
    assert split_envelope(text) == ("a" * 32, "RU-GS", 9, "c" * 32, "message", "sent")
