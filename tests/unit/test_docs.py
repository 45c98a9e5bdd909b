"""The docs cannot drift from what the code and CI do."""

from __future__ import annotations

import re
from pathlib import Path

from hotline.cli.calls import conversation_app, roles_app
from hotline.cli.incidents import incident_app
from hotline.cli.keys import key_app
from hotline.cli.log import export_app, log_app
from hotline.cli.main import app, link_app
from hotline.cli.notices import notification_app
from hotline.cli.operator import operator_app
from hotline.cli.schedule import schedule_app
from hotline.cli.tokens import token_app

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _sh_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)\n```", text, flags=re.S)


def test_readme_opens_with_the_demo_and_the_test_command() -> None:
    first, second = _sh_blocks(README)[:2]
    assert first.endswith("hotline demo")
    assert "pytest" in second


def test_ci_runs_exactly_the_readme_test_command() -> None:
    second = _sh_blocks(README)[1]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert second in ci.splitlines()


def test_every_cli_command_is_in_the_readme_table() -> None:
    names = [c.name or (c.callback.__name__ if c.callback else "") for c in
             app.registered_commands]
    names += [f"link {c.name}" for c in link_app.registered_commands]
    names += [f"key {c.name}" for c in key_app.registered_commands]
    names += [f"roles {c.name}" for c in roles_app.registered_commands]
    names += [f"conversation {c.name}" for c in conversation_app.registered_commands]
    names += [f"incident {c.name}" for c in incident_app.registered_commands]
    names += [f"log {c.name}" for c in log_app.registered_commands]
    names += [f"export {c.name}" for c in export_app.registered_commands]
    names += [f"operator {c.name}" for c in operator_app.registered_commands]
    names += [f"notification {c.name}" for c in notification_app.registered_commands]
    names += [f"schedule {c.name}" for c in schedule_app.registered_commands]
    names += ["token"] + [f"token {c.name}" for c in token_app.registered_commands]
    for name in names:
        assert f"`hotline {name}`" in README, f"hotline {name} is not documented"


def test_every_error_id_of_the_protocol_is_documented() -> None:
    from hotline import errors

    protocol = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    for error_id in errors.REJECTION_STATUS:
        assert f"`{error_id}`" in protocol, f"{error_id} missing from docs/protocol.md"


def test_every_delivery_and_log_setting_is_documented() -> None:
    from hotline.nodedir.config import DeliveryConfig, LogConfig

    protocol = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    for name in [*DeliveryConfig.model_fields, *LogConfig.model_fields]:
        assert f"`{name}`" in protocol, f"setting {name} missing from docs/protocol.md"


def test_every_admission_setting_is_documented() -> None:
    from hotline.nodedir.config import AdmissionConfig, PeerLimits

    protocol = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    for name in [*AdmissionConfig.model_fields, *PeerLimits.model_fields]:
        assert f"`{name}`" in protocol or f"`default.{name}`" in protocol \
            or f"/ `{name}`" in protocol, f"setting {name} missing from docs/protocol.md"


def test_every_health_setting_and_link_health_field_is_documented() -> None:
    from hotline.nodedir.config import HealthConfig

    protocol = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    for name in HealthConfig.model_fields:
        assert f"| `{name}` |" in protocol, f"[health] {name} missing from docs/protocol.md"
    for name in ("health", "rtt_ms", "current_endpoint", "last_good_test_at",
                 "endpoint_health", "rtt_last_hour", "desks_staffed", "clock_offset_ms"):
        assert f"`{name}`" in README, f"status field {name} missing from README"


def test_the_notification_retry_schedule_is_the_one_in_docs_calls() -> None:
    import inspect

    from hotline.notify import retry
    from hotline.notify.runner import Notifier

    calls = " ".join((ROOT / "docs" / "calls.md").read_text(encoding="utf-8").split())
    schedule = re.search(r"tried again after (\d+) s, the wait doubling after each further "
                         r"failure and capped at (\d+) s \(([\d, ]+), … s\)", calls)
    assert schedule, "docs/calls.md no longer states the retry schedule"
    first, cap, listed = schedule.groups()
    assert int(first) * 1000 == retry.FIRST_RETRY_MS
    assert int(cap) * 1000 == retry.MAX_RETRY_MS
    waits = [int(w) for w in listed.split(", ")]
    assert waits == [retry.retry_delay_ms(n) // 1000 for n in range(1, len(waits) + 1)]
    assert waits[-1] == waits[-2] == int(cap)  # the list reaches the cap
    keep = re.search(r"`retry_until`, fixed when it is written: at least (\d+) h after", calls)
    assert keep, "docs/calls.md no longer says how long a notification is retried"
    assert int(keep.group(1)) * 3_600_000 == retry.KEEP_TRYING_MS
    assert "without jitter" in calls
    lane = re.search(r"at most (\d+) attempts at once, each bounded by the channel's "
                     r"timeout \((\d+) s for a webhook, (\d+) s for e-mail\)", calls)
    assert lane, "docs/calls.md no longer describes a channel's lane"
    defaults = inspect.signature(Notifier).parameters
    assert int(lane.group(1)) == defaults["per_channel"].default
    assert float(lane.group(2)) == defaults["webhook_timeout_s"].default
    assert float(lane.group(3)) == defaults["email_timeout_s"].default


def test_every_test_named_in_the_threat_map_exists() -> None:
    """docs/threats.md names, per threat, the tests that cover it: each must exist."""
    text = (ROOT / "docs" / "threats.md").read_text(encoding="utf-8")
    named = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", text)
    assert len(named) > 40
    for path, test in named:
        source = ROOT / path
        assert source.is_file(), path
        if test:
            assert re.search(rf"^(async )?def {test}\(", source.read_text(encoding="utf-8"),
                             flags=re.M), f"{path}::{test}"
