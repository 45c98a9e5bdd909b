"""The console's static files: the vendored htmx is the published file, the pages use no
inline script or style (the CSP forbids both), and the alarm sound is a real WAV."""

from __future__ import annotations

import hashlib
import io
import re
import wave
from pathlib import Path

from hotline.console.security import CONTENT_SECURITY_POLICY
from hotline.console.sound import alarm_wav

CONSOLE = Path(__file__).resolve().parents[2] / "src" / "hotline" / "console"
HTMX_SHA256 = "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717"


def test_vendored_htmx_is_the_published_file() -> None:
    data = (CONSOLE / "static" / "vendor" / "htmx-2.0.11.min.js").read_bytes()
    assert hashlib.sha256(data).hexdigest() == HTMX_SHA256
    assert (CONSOLE / "static" / "vendor" / "htmx-LICENSE.txt").exists()


def test_templates_have_no_inline_script_style_or_handlers() -> None:
    for template in (CONSOLE / "templates").glob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template.name
        assert "<style" not in text, template.name
        assert not re.search(r"\sstyle=", text), template.name
        assert not re.search(r"\son[a-z]+=", text), template.name
        assert "hx-on" not in text, template.name


def test_the_policy_allows_nothing_inline() -> None:
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert "unsafe-eval" not in CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY


def test_the_alarm_sound_is_a_wav_with_sound_in_it() -> None:
    with wave.open(io.BytesIO(alarm_wav())) as w:
        assert w.getnchannels() == 1
        frames = w.readframes(w.getnframes())
        assert w.getnframes() / w.getframerate() >= 0.9
    assert max(frames[1::2]) > 64  # high bytes of the samples: not silence
