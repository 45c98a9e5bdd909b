"""TOTP codes (RFC 6238) with a one-step window and no replay, and the enrolment QR codes."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import pytest

from hotline.accounts import totp

# RFC 6238 appendix B: the SHA-1 seed is the ASCII string "12345678901234567890"; the
# expected 8-digit codes end in these 6 digits.
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode().rstrip("=")
RFC_VECTORS = [(59, "287082"), (1111111109, "081804"), (1111111111, "050471"),
               (1234567890, "005924"), (2000000000, "279037"), (20000000000, "353130")]
NOW = 1_668_524_760.0  # a step boundary: 15 Nov 2022 15:06:00 UTC


@pytest.mark.parametrize(("at", "code"), RFC_VECTORS)
def test_codes_match_the_rfc_6238_sha1_test_vectors(at: int, code: str) -> None:
    assert totp.code_at(RFC_SECRET, at) == code


def test_new_secrets_are_160_random_bits_in_unpadded_base32() -> None:
    secrets = {totp.new_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert len(secret) == 32
        assert "=" not in secret
        assert len(base64.b32decode(secret)) == 20


def test_a_code_is_accepted_one_step_either_side_and_not_two() -> None:
    secret = totp.new_secret()
    now_step = totp.step_at(NOW)
    for offset in (-1, 0, 1):
        code = totp.code_at(secret, NOW + offset * totp.STEP)
        assert totp.matching_step(secret, code, NOW, None) == now_step + offset
    for offset in (-2, 2):
        code = totp.code_at(secret, NOW + offset * totp.STEP)
        assert totp.matching_step(secret, code, NOW, None) is None


def test_a_code_at_or_before_the_last_accepted_step_is_refused() -> None:
    secret = totp.new_secret()
    code = totp.code_at(secret, NOW)
    step = totp.matching_step(secret, code, NOW, None)
    assert step is not None
    assert totp.matching_step(secret, code, NOW, step) is None  # the same code again
    assert totp.matching_step(secret, code, NOW + 10, step) is None
    earlier = totp.code_at(secret, NOW - totp.STEP)
    assert totp.matching_step(secret, earlier, NOW, step) is None  # older than the last
    later = totp.code_at(secret, NOW + totp.STEP)
    assert totp.matching_step(secret, later, NOW + totp.STEP, step) == step + 1


@pytest.mark.parametrize("junk", ["", "12345", "1234567", "12a456", "١٢٣٤٥٦", "-12345",
                                  "123 45", "+12345"])
def test_anything_but_six_ascii_digits_matches_nothing(junk: str) -> None:
    assert totp.matching_step(RFC_SECRET, junk, 59, None) is None


def test_spaces_around_and_inside_a_well_formed_code_are_tolerated() -> None:
    code = totp.code_at(RFC_SECRET, 59)
    assert totp.matching_step(RFC_SECRET, f" {code[:3]} {code[3:]} ", 59, None) == 1


def test_the_provisioning_uri_names_issuer_account_and_parameters() -> None:
    uri = totp.provisioning_uri(RFC_SECRET, "nmcc-1", "US-JS")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert parts.path == "/Hotline%20US-JS:nmcc-1"
    query = parse_qs(parts.query)
    assert query["secret"] == [RFC_SECRET]
    assert query["issuer"] == ["Hotline US-JS"]
    assert (query["algorithm"], query["digits"], query["period"]) == (["SHA1"], ["6"], ["30"])


def test_the_svg_qr_code_is_inline_markup_without_style_attributes() -> None:
    svg = totp.qr_svg(totp.provisioning_uri(RFC_SECRET, "nmcc-1", "US-JS"))
    assert svg.startswith("<svg")
    assert svg.rstrip().endswith("</svg>")
    assert "style=" not in svg
    assert "<style" not in svg
    assert "<?xml" not in svg
    assert 'xmlns="http://www.w3.org/2000/svg"' in svg
    assert "<title>" in svg
    assert 'width="' in svg
    assert 'height="' in svg


def test_the_terminal_qr_code_is_drawn_with_block_characters() -> None:
    art = totp.qr_terminal(totp.provisioning_uri(RFC_SECRET, "nmcc-1", "US-JS"))
    lines = art.splitlines()
    assert len(lines) > 10
    assert all(len(line) == len(lines[0]) for line in lines)
    assert set(art) <= {"█", "▀", "▄", " ", "\n"}
