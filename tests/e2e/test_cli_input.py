"""Bad command-line input: a clear error (exit 2) naming what is wrong, and nothing
created — for arguments that are not UTF-8 (on POSIX, any bytes may be an argument),
``HOTLINE_*`` variables that are not, and a display name with control characters."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.nodes import PASSPHRASE, free_port


def hotline_raw(*args: str | bytes, env: dict[str, str | bytes] | None = None
                ) -> subprocess.CompletedProcess[str]:
    """``python -m hotline ARGS`` with arguments given as raw bytes where needed."""
    full = {os.fsencode(k): os.fsencode(v) for k, v in
            {**os.environ, "HOTLINE_PASSPHRASE": PASSPHRASE, **(env or {})}.items()}
    return subprocess.run([sys.executable, "-m", "hotline", *args], env=full,
                          capture_output=True, text=True, errors="replace", timeout=60,
                          check=False)


def _init_args(node_dir: Path, name: str | bytes) -> list[str | bytes]:
    return ["init", "--dir", str(node_dir), "--party", "US-JS", "--name", name,
            "--listen", f"127.0.0.1:{free_port()}"]


def test_a_non_utf8_argument_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    node_dir = tmp_path / "us"
    result = hotline_raw(*_init_args(node_dir, b"US \xff\xfe"))
    assert result.returncode == 2, result.stderr
    assert "error[bad-argument]" in result.stderr
    assert "not UTF-8" in result.stderr
    assert "\\xff" in result.stderr  # the byte shown, not a replacement character
    assert "Traceback" not in result.stderr
    assert not node_dir.exists()


def test_a_non_utf8_node_directory_is_refused(tmp_path: Path) -> None:
    result = hotline_raw("status", "--dir", os.fsencode(tmp_path) + b"/n\xe9")
    assert result.returncode == 2, result.stderr
    assert "error[bad-argument]" in result.stderr


def test_a_non_utf8_passphrase_variable_is_refused_and_not_shown(tmp_path: Path) -> None:
    node_dir = tmp_path / "us"
    result = hotline_raw(*_init_args(node_dir, "US"),
                         env={"HOTLINE_PASSPHRASE": b"secret-\xff-passphrase"})
    assert result.returncode == 2, result.stderr
    assert "HOTLINE_PASSPHRASE" in result.stderr
    assert "secret" not in result.stderr
    assert not node_dir.exists()


def test_a_display_name_with_a_line_break_is_refused_as_peers_would(tmp_path: Path) -> None:
    """Peers refuse a link offer whose name holds a control character; ``init`` used to
    accept one (and a NUL or an escape sequence), making a node whose offers no peer
    would take."""
    node_dir = tmp_path / "us"
    for name in ("US\nerror[forged]: line", "US \x1b[31mred", "x" * 121):
        result = hotline_raw(*_init_args(node_dir, name))
        assert result.returncode == 2, result.stderr  # a usage error, as every bad option
        assert "error[bad-option]: --name:" in result.stderr
        assert not node_dir.exists()


def test_non_utf8_text_on_stdin_or_in_a_file_is_refused(tmp_path: Path) -> None:
    """``send --stdin``, ``operator ... --password-stdin`` and ``notify --file`` read
    text: a stray byte is named (exit 2), not a traceback from deep in the client."""
    sent = subprocess.run([sys.executable, "-m", "hotline", "send", "--dir", str(tmp_path),
                           "RU-GS", "--stdin"], input=b"fine\nnot \xff fine\n",
                          capture_output=True, timeout=60, check=False)
    assert sent.returncode == 2, sent.stderr
    assert b"error[bad-input]: stdin is not UTF-8 text (byte 10 is 0xff)" in sent.stderr
    notice = tmp_path / "notice.toml"
    notice.write_bytes(b'template = "incident-notification"\n[fields]\nwhat = "\xe9"\n')
    result = hotline_raw("notify", "--dir", str(tmp_path), "--file", str(notice))
    assert result.returncode == 2, result.stderr
    assert "error[bad-input]" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_peers_name_is_shown_as_text_not_read_as_markup(tmp_path: Path) -> None:
    """A peer's display name may hold ``[`` (the offer's rule allows it): ``link accept``
    used to read it as terminal markup — ``[/]`` stopped the command with a traceback
    before the safety number was shown, ``[red]`` restyled what the operator reads."""
    peer, me = tmp_path / "peer[/]dir", tmp_path / "me"
    name = "RU [/] General [red]Staff"
    assert hotline_raw(*["init", "--dir", str(peer), "--party", "RU-GS", "--name", name,
                         "--listen", f"127.0.0.1:{free_port()}"]).returncode == 0
    assert hotline_raw(*_init_args(me, "US")).returncode == 0
    offer = tmp_path / "ru.offer"
    made = hotline_raw("link", "offer", "--dir", str(peer), "--out", str(offer))
    assert made.returncode == 0, made.stderr
    accepted = hotline_raw("link", "accept", "--dir", str(me), str(offer), "--yes")
    assert accepted.returncode == 0, accepted.stderr
    assert f"({name})" in accepted.stderr
    assert "Link with RU-GS stored" in accepted.stdout


def test_an_unusable_operator_token_file_is_a_clear_error(tmp_path: Path) -> None:
    """Missing or garbled, ``operator.token`` used to end every command that talks to
    the node in a traceback; readable by everyone, in a bare 401 (the node refuses such
    a token): now each is named, with the way out."""
    node_dir = tmp_path / "us"
    assert hotline_raw(*_init_args(node_dir, "US")).returncode == 0
    token = node_dir / "operator.token"
    token.chmod(0o644)
    exposed = hotline_raw("status", "--dir", str(node_dir))
    assert exposed.returncode == 1, exposed.stderr
    assert "error[token-exposed]" in exposed.stderr
    assert "chmod 600" in exposed.stderr
    token.write_bytes(b"\xfftoken\n")
    token.chmod(0o600)
    garbled = hotline_raw("status", "--dir", str(node_dir))
    assert "error[no-token]" in garbled.stderr
    assert "not ASCII text" in garbled.stderr
    token.unlink()
    missing = hotline_raw("inbox", "--dir", str(node_dir))
    assert "error[no-token]" in missing.stderr
    for result in (exposed, garbled, missing):
        assert "Traceback" not in result.stderr


def test_init_refuses_a_dir_it_cannot_make_and_leaves_nothing_behind(tmp_path: Path) -> None:
    """``--dir`` naming a file (or a path through one) used to end in a traceback; a
    failure after the directory was made (an unreachable ``--db``) left it behind."""
    afile = tmp_path / "notes.txt"
    afile.write_text("mine\n")
    for target in (afile, afile / "node"):
        result = hotline_raw(*_init_args(target, "US"))
        assert result.returncode == 1, result.stderr
        assert "error[bad-dir]" in result.stderr
        assert "Traceback" not in result.stderr
    assert afile.read_text() == "mine\n"
    deep = tmp_path / "a" / "b" / "us"
    result = hotline_raw(*_init_args(deep, "US"), "--db",
                         f"postgresql://nobody@127.0.0.1:{free_port()}/none")
    assert result.returncode == 1, result.stderr
    assert not (tmp_path / "a").exists()


def test_link_offer_out_to_an_unwritable_place_is_a_clear_error(tmp_path: Path) -> None:
    node_dir = tmp_path / "us"
    assert hotline_raw(*_init_args(node_dir, "US")).returncode == 0
    result = hotline_raw("link", "offer", "--dir", str(node_dir), "--out",
                         str(tmp_path / "no-such-dir" / "us.offer"))
    assert result.returncode == 1, result.stderr  # as every other --out
    assert "error[unwritable-file]" in result.stderr
    assert "Traceback" not in result.stderr
