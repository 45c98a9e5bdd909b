"""Endpoints a peer's signed offer (or config.toml) names: printable URLs of bounded
length only. ``urlsplit`` drops tabs and line breaks before parsing, so a URL it calls
well-formed could still carry them — and a NUL, an escape or 100 kB — into the HTTP
client, the logs, ``hotline status`` and the console."""

from __future__ import annotations

import pytest

from hotline.errors import LinkError
from hotline.protocol.offer import check_endpoint
from tests.unit.test_receipt_offer import _obj, assert_bad_offer, good_offer, resigned_offer

#: (a NUL cannot reach an offer: canonical JSON refuses it; config.toml can hold one)
HOSTILE = ["http://a.example\n:7100", "http://a.exa\tmple:7100",
           "http://a.example:7100/\x1b[31m", "http://a.example:7100/ x",
           "http://a.example:7100/\u2028", "http://" + "a" * 3000 + ".example:7100"]


@pytest.mark.parametrize("endpoint", HOSTILE)
def test_a_signed_offer_with_a_hostile_endpoint_is_refused(endpoint: str) -> None:
    obj = _obj(good_offer())
    obj["endpoints"] = ["https://ok.example.org", endpoint]
    assert_bad_offer(resigned_offer(obj))


@pytest.mark.parametrize("endpoint", [*HOSTILE, "http://a.example:7100/\x00"])
def test_a_hostile_endpoint_is_refused_where_it_is_written(endpoint: str) -> None:
    with pytest.raises(LinkError) as info:
        check_endpoint(endpoint)
    assert info.value.error_id == "bad-endpoint"


@pytest.mark.parametrize("endpoint", ["http://198.51.100.7:7100", "https://[2001:db8::1]:7100",
                                      "http://пример.рф:7100", "https://h.example.org/hotline"])
def test_ordinary_endpoints_still_pass(endpoint: str) -> None:
    assert check_endpoint(endpoint) == endpoint
