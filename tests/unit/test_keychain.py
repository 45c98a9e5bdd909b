"""Key histories in evidence and in the keystore: the offline rule across rotations."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotline.errors import ConfigError
from hotline.log.keychain import history_object, judge, parse_history, trusted_histories
from hotline.nodedir import keystore
from hotline.protocol.keyhistory import make_certificate, make_revocation, make_rotation
from hotline.protocol.keys import KeyRing, PartyKeys

PARTY = "RU-GS"
T0 = 1_700_000_000_000
A, B, C = PartyKeys.generate(), PartyKeys.generate(), PartyKeys.generate()


def test_a_replayed_history_accepts_each_key_up_to_its_rotation_only() -> None:
    obj = history_object(A.public, [make_rotation(PARTY, A, B, T0 + 100),
                                    make_rotation(PARTY, B, C, T0 + 200)])
    history = parse_history(PARTY, obj, "key_history.RU-GS")
    assert [r.kid for r in history.records] == [A.public.key_id, B.public.key_id,
                                                C.public.key_id]
    assert judge(history, A.public.key_id, T0 + 100)[1] is None
    _key, why = judge(history, A.public.key_id, T0 + 101)
    assert why is not None
    assert "back-dated" in why
    assert judge(history, B.public.key_id, T0 + 150)[1] is None
    assert judge(history, C.public.key_id, T0 + 10**9)[1] is None


def test_a_revoked_key_proves_nothing_offline_whatever_time_it_claims() -> None:
    revoke = make_revocation(PARTY, make_certificate(PARTY, A, T0), B, T0 + 50, T0 + 60)
    history = parse_history(PARTY, history_object(A.public, [revoke]), "h")
    _key, why = judge(history, A.public.key_id, T0 - 10**6)
    assert why is not None
    assert "revoked" in why


def test_a_forged_step_in_a_history_is_refused_naming_it() -> None:
    forged = make_rotation(PARTY, C, B, T0)  # not signed by A, the first key
    forged["old"] = A.public.key_id
    with pytest.raises(ValueError, match=r"h\.statements\[0\]"):
        parse_history(PARTY, history_object(A.public, [forged]), "h")


def test_a_history_is_followed_only_from_a_trusted_key() -> None:
    history = parse_history(PARTY, history_object(A.public, [make_rotation(PARTY, A, B, T0)]),
                            "h")
    # the keys file trusts B; the bundle embeds A: tied by the signed rotation
    followed, problems, notes = trusted_histories({PARTY: A.public}, {PARTY: B.public},
                                                  {PARTY: history}, {})
    assert PARTY in followed
    assert problems == []
    assert notes
    # a trusted key outside the history: not followed, and said so
    followed, problems, _ = trusted_histories({PARTY: A.public}, {PARTY: C.public},
                                              {PARTY: history}, {})
    assert followed == {}
    assert "not in" in problems[0]


def test_the_keystore_keeps_every_pair_and_a_ring_switches(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    keystore.write_keystore(path, PARTY, A, "pass phrase")
    pairs, kek = keystore.unlock_all(path, "pass phrase")
    keystore.add_pair(path, kek, B)
    pairs, _ = keystore.unlock_all(path, "pass phrase")
    assert [p.public.key_id for p in pairs] == [A.public.key_id, B.public.key_id]
    assert keystore.read_public(path).key_id == B.public.key_id
    with pytest.raises(ConfigError) as info:
        keystore.add_pair(path, bytes(32), C)  # the wrong key-encryption key: no write
    assert info.value.error_id == "wrong-passphrase"
    assert len(keystore.unlock_all(path, "pass phrase")[0]) == 2
    ring = KeyRing(pairs)
    ring.switch(pairs[0])
    assert ring.public.key_id == A.public.key_id
    assert ring.signature(b"x") == A.signature(b"x")
    assert [p.public.key_id for p in ring.older] == [B.public.key_id]
