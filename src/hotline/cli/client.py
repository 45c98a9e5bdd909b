"""The CLI's client for a running node's operator API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from hotline.errors import HotlineError
from hotline.nodedir.config import TOKEN_NAME, NodeConfig
from hotline.nodedir.token import read_token


def base_url(config: NodeConfig) -> str:
    host = config.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.port}"


class OperatorClient:
    def __init__(self, node_dir: Path, config: NodeConfig, timeout: float = 30.0) -> None:
        self.url = base_url(config)
        token = read_token(node_dir / TOKEN_NAME)
        self._http = httpx.Client(base_url=self.url, timeout=timeout,
                                  headers={"authorization": f"Bearer {token}"})

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError:
            raise HotlineError("node-not-running", f"no node answers at {self.url}",
                               hint="start it with `hotline serve --dir DIR`") from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.is_error:
            raise HotlineError(str(body.get("error", f"http-{response.status_code}")),
                               str(body.get("message", response.text[:200])), body.get("hint"))
        return body
