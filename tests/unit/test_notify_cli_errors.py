"""``hotline notify`` and ``hotline notification receipt`` refuse what they can check
themselves in the command's own terms (``--to``, ``--lang``, ``--as``, ``RECEIPT``, a
``--file`` key) before asking a node: never the request's (``body.to.0``), never a call
address's wording. The checks come before the node is reached, so no node runs here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

NOTIFY = ["notify", "--template", "link-test", "--field", "sequence=1",
          "--field", "sent_at=2022-11-15T15:40+01:00[Europe/Warsaw]"]


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hotline", *args, "--dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(("args", "named", "said"), [
    (["--to", "pl-gs"], "--to", "'pl-gs' is not a party id"),
    (["--to", "PL-GS", "--to", "US JS"], "--to", "'US JS' is not a party id"),
    (["--to", "PL-GS", "--lang", "de"], "--lang", "en, ar, ru, uk, pl"),
    (["--to", "PL-GS", "--as", "Ops DO"], "--as", "'Ops DO' is not a role id"),
])
def test_notify_names_a_bad_option_as_the_command_takes_it(tmp_path: Path, args: list[str],
                                                            named: str, said: str) -> None:
    done = _cli(tmp_path, *NOTIFY, *args)
    assert done.returncode == 2, done.stderr
    assert named in done.stderr, done.stderr
    assert said in done.stderr, done.stderr
    assert "body." not in done.stderr
    assert "ROLE@PARTY" not in done.stderr


def test_notify_file_names_a_bad_key_as_the_file_writes_it(tmp_path: Path) -> None:
    path = tmp_path / "n.toml"
    for text, said in [('template = "link-test"\nto = "PL-GS"\n[fields]\nnote = "x"\n',
                        "to"),
                       ('template = "link-test"\nto = ["PL-GS"]\ntoo = 1\n[fields]\n'
                        'sequence = 1\n', "too")]:
        path.write_text(text, encoding="utf-8")
        done = _cli(tmp_path, "notify", "--file", str(path))
        assert done.returncode == 2, done.stderr
        assert f"{path.name}: {said}" in done.stderr or f"{said}:" in done.stderr, \
            done.stderr
        assert "body." not in done.stderr


def test_a_receipt_of_another_kind_or_a_bad_id_is_named_as_the_command_takes_it(
        tmp_path: Path) -> None:
    done = _cli(tmp_path, "notification", "receipt", "a" * 32, "seen", "--as", "ops-do")
    assert done.returncode == 2
    assert "RECEIPT" in done.stderr
    assert "read or acknowledged" in done.stderr
    done = _cli(tmp_path, "notification", "receipt", "xyz", "read", "--as", "ops-do")
    assert done.returncode == 2
    assert "NOTICE_ID" in done.stderr


def test_the_api_names_a_notification_request_field_in_the_users_terms() -> None:
    from pydantic import ValidationError

    from hotline.api.notices import NoticeRequest
    from hotline.fieldtext import describe

    for body, said in [({"template": "Incident"}, "is not a template id"),
                       ({"lang": "de"}, "'de' is not en, ar, ru, uk or pl"),
                       ({"to": ["pl-gs"]}, "'pl-gs' is not a party id")]:
        try:
            NoticeRequest.model_validate({"template": "link-test", "to": ["PL-GS"],
                                          "fields": {}, **body})
        except ValidationError as exc:
            _field, message = describe(exc.errors()[0])
            assert said in message, message
            assert "pattern" not in message
        else:
            raise AssertionError(body)


def test_a_field_given_twice_is_refused_naming_it(tmp_path: Path) -> None:
    done = _cli(tmp_path, *NOTIFY, "--field", "sequence=2", "--to", "PL-GS")
    assert done.returncode != 0
    assert "'sequence'" in done.stderr
    assert "twice" in done.stderr
