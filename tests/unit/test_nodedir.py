"""The node directory: keystore, operator token and config.toml."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from pydantic import ValidationError

from hotline.errors import ConfigError
from hotline.nodedir import keystore
from hotline.nodedir.config import (
    CONFIG_NAME,
    DeliveryConfig,
    NodeConfig,
    load_config,
    parse_listen,
    write_config,
)
from hotline.nodedir.token import TokenChecker, read_token, write_token
from hotline.protocol.keys import PartyKeys, b64e

PASSPHRASE = "correct horse battery staple ✓"
PARTY = "US-JS"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ======================================================================= keystore
# Each write or unlock derives an Argon2id key (~0.15 s), so the keystore is written
# once per module and the tests that need to alter it work on copies.

@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, PartyKeys]:
    keys = PartyKeys.generate()
    path = tmp_path_factory.mktemp("keystore") / "keys.json"
    keystore.write_keystore(path, PARTY, keys, PASSPHRASE)
    return path, keys


def test_keystore_round_trip(stored: tuple[Path, PartyKeys]) -> None:
    path, keys = stored
    unlocked = keystore.unlock(path, PASSPHRASE)
    assert unlocked.raw() == keys.raw()
    assert unlocked.public.key_id == keys.public.key_id


def test_keystore_file_is_private_and_holds_no_plain_keys(stored: tuple[Path, PartyKeys]) -> None:
    path, keys = stored
    assert _mode(path) == 0o600
    text = path.read_text(encoding="utf-8")
    sign_raw, enc_raw = keys.raw()
    assert b64e(sign_raw) not in text
    assert b64e(enc_raw) not in text
    doc = json.loads(text)
    assert doc["party"] == PARTY
    assert doc["kdf"]["alg"] == "argon2id"


def test_read_public_needs_no_passphrase(stored: tuple[Path, PartyKeys]) -> None:
    path, keys = stored
    public = keystore.read_public(path)
    assert public.sign_bytes == keys.public.sign_bytes
    assert public.enc_bytes == keys.public.enc_bytes


def test_wrong_passphrase(stored: tuple[Path, PartyKeys]) -> None:
    path, _ = stored
    with pytest.raises(ConfigError) as info:
        keystore.unlock(path, PASSPHRASE + "!")
    assert info.value.error_id == "wrong-passphrase"
    assert info.value.hint


def test_party_is_bound_to_the_sealed_keys(stored: tuple[Path, PartyKeys],
                                           tmp_path: Path) -> None:
    path, _ = stored
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["party"] = "US-XX"
    moved = tmp_path / "keys.json"
    moved.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        keystore.unlock(moved, PASSPHRASE)
    assert info.value.error_id == "wrong-passphrase"


def test_keystore_refuses_to_overwrite(stored: tuple[Path, PartyKeys]) -> None:
    path, keys = stored
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        keystore.write_keystore(path, PARTY, PartyKeys.generate(), PASSPHRASE)
    assert path.read_bytes() == before
    assert keystore.read_public(path).sign_bytes == keys.public.sign_bytes


def test_empty_passphrase_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    with pytest.raises(ConfigError) as info:
        keystore.write_keystore(path, PARTY, PartyKeys.generate(), "")
    assert info.value.error_id == "empty-passphrase"
    assert not path.exists()


@pytest.mark.parametrize("content", ["", "not json", "{"])
def test_unreadable_keystore(tmp_path: Path, content: str) -> None:
    path = tmp_path / "keys.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        keystore.read_public(path)
    assert info.value.error_id == "bad-keystore"


def test_missing_keystore(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        keystore.read_public(tmp_path / "absent.json")
    assert info.value.error_id == "bad-keystore"


# ======================================================================= token

def test_write_token(tmp_path: Path) -> None:
    path = tmp_path / "operator.token"
    token = write_token(path)
    assert len(token) >= 40
    assert read_token(path) == token
    assert path.read_text(encoding="ascii") == token + "\n"
    assert _mode(path) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["operator.token"]
    assert write_token(path) != token


def test_token_checker_accepts_only_current_token(tmp_path: Path) -> None:
    path = tmp_path / "operator.token"
    token = write_token(path)
    checker = TokenChecker(path)
    assert checker.check(token)
    assert checker.check(token)  # still true once cached
    for wrong in ("", " ", token[:-1], token + "x", token.upper(), token + "\n", "Bearer " + token):
        assert not checker.check(wrong), wrong


def test_token_checker_rejects_everything_for_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "operator.token"
    path.write_text("\n", encoding="ascii")
    checker = TokenChecker(path)
    assert not checker.check("")
    assert not checker.check("anything")


def test_token_checker_picks_up_rotation(tmp_path: Path) -> None:
    path = tmp_path / "operator.token"
    old = write_token(path)
    checker = TokenChecker(path)
    assert checker.check(old)
    old_mtime = path.stat().st_mtime_ns

    new = write_token(path)
    if path.stat().st_mtime_ns == old_mtime:
        # Coarse file-system timestamps: make the change visible deterministically.
        bumped = old_mtime + 1_000_000_000
        os.utime(path, ns=(bumped, bumped))
    assert path.stat().st_mtime_ns != old_mtime

    assert checker.check(new)
    assert not checker.check(old)


# ======================================================================= config

def _config(**overrides: Any) -> NodeConfig:
    fields: dict[str, Any] = {"party": PARTY, "name": "Jane's Line — Джейн",
                              "listen": "127.0.0.1:7100",
                              "endpoints": ["http://198.51.100.7:7100"], "db": "hotline.db"}
    fields.update(overrides)
    return NodeConfig(**fields)


def _write_raw(node_dir: Path, data: dict[str, Any]) -> None:
    (node_dir / CONFIG_NAME).write_text(tomli_w.dumps(data), encoding="utf-8")


def _base_data() -> dict[str, Any]:
    return _config().model_dump()


def _load_error(node_dir: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(node_dir)
    return info.value


def test_missing_node_dir(tmp_path: Path) -> None:
    err = _load_error(tmp_path / "nowhere")
    assert err.error_id == "no-node"
    assert err.hint


def test_dir_without_config(tmp_path: Path) -> None:
    assert _load_error(tmp_path).error_id == "no-node"


def test_config_round_trip(tmp_path: Path) -> None:
    config = _config(endpoints=["https://a.example.org/", "http://[2001:db8::1]:7100"],
                     delivery=DeliveryConfig(batch_size=10, backoff_initial_seconds=0.5,
                                             skew_seconds=60))
    write_config(tmp_path, config)
    loaded = load_config(tmp_path)
    assert loaded == config
    assert loaded.endpoints == ["https://a.example.org", "http://[2001:db8::1]:7100"]
    assert loaded.delivery.batch_size == 10
    assert loaded.delivery.backoff_initial_seconds == 0.5
    assert (loaded.host, loaded.port) == ("127.0.0.1", 7100)


def test_config_defaults_when_delivery_omitted(tmp_path: Path) -> None:
    data = _base_data()
    del data["delivery"]
    _write_raw(tmp_path, data)
    assert load_config(tmp_path).delivery == DeliveryConfig()


@pytest.mark.parametrize(("path", "shown"), [((), "bogus"), (("delivery",), "delivery.bogus")])
def test_unknown_field_is_named(tmp_path: Path, path: tuple[str, ...], shown: str) -> None:
    data = _base_data()
    target = data
    for key in path:
        target = target[key]
    target["bogus"] = 1
    _write_raw(tmp_path, data)
    err = _load_error(tmp_path)
    assert err.error_id == "bad-config"
    assert repr(shown) in err.message


@pytest.mark.parametrize(("change", "field"), [
    ({"party": "us-js"}, "party"),
    ({"endpoints": []}, "endpoints"),
    ({"delivery": {"batch_size": 0}}, "delivery.batch_size"),
    ({"delivery": {"max_envelope_bytes": 100}}, "delivery.max_envelope_bytes"),
])
def test_invalid_field_is_named(tmp_path: Path, change: dict[str, Any], field: str) -> None:
    data = _base_data()
    data.update(change)
    _write_raw(tmp_path, data)
    err = _load_error(tmp_path)
    assert err.error_id == "bad-config"
    assert repr(field) in err.message


def test_bad_endpoint_in_config_is_a_config_error(tmp_path: Path) -> None:
    data = _base_data()
    data["endpoints"] = ["ftp://x"]
    _write_raw(tmp_path, data)
    err = _load_error(tmp_path)
    assert err.error_id == "bad-config"


def test_missing_required_field(tmp_path: Path) -> None:
    data = _base_data()
    del data["party"]
    _write_raw(tmp_path, data)
    err = _load_error(tmp_path)
    assert err.error_id == "bad-config"
    assert "'party'" in err.message


def test_invalid_toml(tmp_path: Path) -> None:
    (tmp_path / CONFIG_NAME).write_text('party = "US-JS\n', encoding="utf-8")
    assert _load_error(tmp_path).error_id == "bad-config"


def test_bad_listen_in_config(tmp_path: Path) -> None:
    data = _base_data()
    data["listen"] = "nohost"
    _write_raw(tmp_path, data)
    err = _load_error(tmp_path)
    assert err.error_id in {"bad-listen", "bad-config"}
    assert "listen" in err.message


def test_bad_listen_in_model() -> None:
    with pytest.raises(ValidationError, match="not HOST:PORT"):
        _config(listen="nohost")


@pytest.mark.parametrize(("value", "expected"), [
    ("127.0.0.1:7100", ("127.0.0.1", 7100)),
    ("0.0.0.0:1", ("0.0.0.0", 1)),
    ("[::1]:65535", ("::1", 65535)),
    ("localhost:8080", ("localhost", 8080)),
])
def test_parse_listen(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value", [
    "nohost", ":7100", "host:", "host:0", "host:65536", "host:-1", "host:abc", "", "7100",
])
def test_parse_listen_rejects(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_listen(value)
    assert info.value.error_id == "bad-listen"


def test_parse_listen_rejects_superscript_digit() -> None:
    with pytest.raises(ConfigError):
        parse_listen("host:²")


@pytest.mark.parametrize("kind", ["directory", "not-ascii"])
def test_token_checker_refuses_everything_for_an_unusable_file(
        tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "metrics.token"
    if kind == "directory":
        path.mkdir()
    else:
        path.write_bytes("tökén\n".encode())
    checker = TokenChecker(path)
    with caplog.at_level("WARNING", logger="hotline.security"):
        assert not checker.check("tökén")
        assert not checker.check("")
        assert not checker.check("anything")
    unusable = [r for r in caplog.records if "is unusable" in r.getMessage()]
    assert len(unusable) == 1  # said once, not on every request


@pytest.mark.parametrize(("section", "field", "value"), [
    ("health", "window", True), ("health", "test_every_seconds", True),
    ("health", "test_every_seconds", "5"), ("health", "down_after", 2.0),
    ("delivery", "batch_size", "10")])
def test_a_value_of_the_wrong_type_is_named_not_coerced(
        tmp_path: Path, section: str, field: str, value: object) -> None:
    data = _base_data()
    data.setdefault(section, {})[field] = value
    _write_raw(tmp_path, data)
    err = _load_error(tmp_path)
    assert err.error_id == "bad-config"
    assert f"{section}.{field}" in err.message


def test_an_integer_still_fills_a_float(tmp_path: Path) -> None:
    data = _base_data()
    data["health"] = {"test_every_seconds": 5, "degraded_rtt_ms": 800}
    _write_raw(tmp_path, data)
    assert load_config(tmp_path).health.test_every_seconds == 5.0
