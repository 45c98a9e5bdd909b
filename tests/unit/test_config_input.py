"""Bad input in ``config.toml`` and token files: a clear ``bad-config`` naming the field,
never a traceback, and never a setting silently switched off."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from hotline.errors import ConfigError
from hotline.nodedir.config import CONFIG_NAME, NodeConfig, load_config, write_config
from hotline.nodedir.token import TokenChecker


def _data(**top: Any) -> dict[str, Any]:
    data = NodeConfig(party="US-JS", name="US Joint Staff", listen="127.0.0.1:7100",
                      endpoints=["http://127.0.0.1:7100"],
                      db="sqlite:////tmp/x.db").model_dump()
    data.update(top)
    return data


def _write(node_dir: Path, data: dict[str, Any]) -> None:
    (node_dir / CONFIG_NAME).write_text(tomli_w.dumps(data), encoding="utf-8")


def _refusal(node_dir: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(node_dir)
    assert info.value.error_id == "bad-config"
    return info.value


def test_down_after_longer_than_the_window_is_refused(tmp_path: Path) -> None:
    """Only the window's tests are kept: a streak longer than it is never seen, so the
    ``down_after`` rule would be off without a word."""
    data = _data()
    data["health"].update(window=5, down_after=6)
    _write(tmp_path, data)
    err = _refusal(tmp_path)
    assert "down_after" in err.message
    assert "window" in err.message
    data["health"].update(window=5, down_after=5)  # the bound itself is fine
    _write(tmp_path, data)
    assert load_config(tmp_path).health.down_after == 5


@pytest.mark.parametrize(("field", "value"), [
    ("name", "US\nFAKE LINE"), ("name", "US\x1b[31m"), ("name", "US\x00"), ("name", ""),
    ("name", "x" * 121), ("db", "sqlite:////tmp/x.db\x00"), ("db", "sqlite:////tmp/\nx"),
    ("listen", "127.0.0.1\x00:7100"), ("listen", "127.0.0.1\n:7100"),
])
def test_control_characters_in_config_strings_are_refused(
        tmp_path: Path, field: str, value: str) -> None:
    _write(tmp_path, _data(**{field: value}))
    err = _refusal(tmp_path)
    assert repr(field) in err.message


def test_a_nul_in_the_metrics_token_file_name_is_refused(tmp_path: Path) -> None:
    data = _data()
    data["metrics"] = {"token_file": "metrics.token\x00../../etc/passwd"}
    _write(tmp_path, data)
    assert "metrics.token_file" in _refusal(tmp_path).message


def test_a_name_peers_accept_is_accepted(tmp_path: Path) -> None:
    name = "Генштаб — \"UA\" <GS> (الأركان)"
    _write(tmp_path, _data(name=name))
    assert load_config(tmp_path).name == name


def test_a_config_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    text = tomli_w.dumps(_data()).replace('name = "US Joint Staff"', 'name = "US \udcff"')
    (tmp_path / CONFIG_NAME).write_bytes(text.encode("utf-8", "surrogateescape"))
    err = _refusal(tmp_path)
    assert "not UTF-8" in err.message


def test_write_config_leaves_no_partial_file(tmp_path: Path) -> None:
    """A value that cannot be written as UTF-8 (a lone surrogate, what a non-UTF-8
    argument becomes) leaves neither an empty config.toml nor a partial one."""
    bad = NodeConfig.model_construct(**{**NodeConfig.model_validate(_data()).__dict__,
                                        "name": "US \udcff"})
    with pytest.raises(UnicodeEncodeError):
        write_config(tmp_path, bad)
    assert list(tmp_path.iterdir()) == []


def test_a_token_file_path_through_a_file_matches_nothing_and_does_not_raise(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "operator.token").write_text("secret\n")
    checker = TokenChecker(tmp_path / "operator.token" / "x")
    with caplog.at_level("WARNING", logger="hotline.security"):
        assert not checker.check("secret")
        assert not checker.check("secret")
    assert len([r for r in caplog.records if "is unusable" in r.getMessage()]) == 1
    assert not TokenChecker(tmp_path / "nul\x00name").check("secret")


def test_a_world_readable_token_file_matches_nothing_until_chmod_600(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "metrics.token"
    path.write_text("s3cret\n")
    os.chmod(path, 0o644)
    checker = TokenChecker(path)
    with caplog.at_level("WARNING", logger="hotline.security"):
        assert not checker.check("s3cret")
        assert not checker.check("s3cret")
    unusable = [r.getMessage() for r in caplog.records if "is unusable" in r.getMessage()]
    assert len(unusable) == 1
    assert "chmod 600" in unusable[0]
    os.chmod(path, 0o600)  # the mode alone changes: noticed without a restart
    assert checker.check("s3cret")


def test_a_reseal_later_than_the_skew_window_is_refused(tmp_path: Path) -> None:
    """Re-sealing after 3600 s with a 300 s window: what waited between the two would be
    refused by a peer with the same window (timestamp-out-of-window), not re-sealed."""
    data = _data()
    data["delivery"].update(reseal_after_seconds=3600.0, skew_seconds=300)
    _write(tmp_path, data)
    assert "reseal_after_seconds" in _refusal(tmp_path).message
    data["delivery"].update(reseal_after_seconds=300.0)
    _write(tmp_path, data)
    assert load_config(tmp_path).delivery.reseal_after_seconds == 300.0
