"""``[metrics] token_file`` naming something unusable: every presented token refused
(401, one security-log line each) and said once in the log, never a 500."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from tests.metrics import scrape
from tests.nodes import NodeProcess, wait_until

Make = Callable[..., NodeProcess]


def _refused_once_each(node: NodeProcess, token: str, times: int) -> None:
    for n in range(1, times + 1):
        answer = scrape(node.url, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"] == "unauthorized"
        wait_until(lambda n=n: len(node.log_lines("GET /metrics: unauthorized")) == n,  # type: ignore[misc]
                   10, what="one security-log line per refusal")


def test_a_token_file_path_through_a_file_is_a_refusal_not_a_500(
        make_sqlite_node: Make) -> None:
    node = make_sqlite_node("US-JS")
    node.configure("metrics", token_file="operator.token/metrics.token")
    node.start()
    _refused_once_each(node, "anything", 2)
    assert len(node.log_lines("is unusable")) == 1
    assert not node.log_lines("Traceback")
    # the operator token still opens it
    assert scrape(node.url, headers={"Authorization": f"Bearer {node.token}"}
                  ).status_code == 200


def test_a_world_readable_metrics_token_opens_nothing_until_chmod_600(
        make_sqlite_node: Make) -> None:
    node = make_sqlite_node("US-JS")
    node.configure("metrics", token_file="metrics.token")
    token = secrets.token_urlsafe(32)
    path = node.dir / "metrics.token"
    path.write_text(token + "\n")
    path.chmod(0o644)
    node.start()
    _refused_once_each(node, token, 2)
    unusable = node.log_lines("is unusable")
    assert len(unusable) == 1
    assert "chmod 600" in unusable[0]
    assert token not in node.log_path.read_text()
    path.chmod(0o600)  # noticed without a restart
    assert scrape(node.url, headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_a_missing_metrics_token_file_is_said_at_start(make_sqlite_node: Make) -> None:
    node = make_sqlite_node("US-JS")
    node.configure("metrics", token_file="metrics.tokn")  # a typo
    node.start()
    wait_until(lambda: node.log_lines("metrics.tokn opens nothing (missing"), 30,
               what="the warning at start")
    _refused_once_each(node, "anything", 1)
