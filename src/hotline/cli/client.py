"""The CLI's client for a running node's operator API."""

from __future__ import annotations

import functools
import stat
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import httpx
from typer.core import TyperArgument, TyperOption

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


def operator_token(path: Path) -> str:
    """The administrator's token, as the node will accept it; else a clear error (no
    traceback for a missing or garbled file, and no 401 to puzzle over for one the node
    refuses because every user of the host can read it)."""
    hint = "`hotline token` writes a new one (the running node takes it without a restart)"
    try:
        mode = path.stat().st_mode
        token = read_token(path)
    except OSError as exc:
        raise HotlineError("no-token", f"cannot read the operator token {path}: "
                           f"{exc.strerror}", hint=hint) from None
    except UnicodeDecodeError:
        raise HotlineError("no-token", f"the operator token {path} is not ASCII text",
                           hint=hint) from None
    if mode & stat.S_IROTH:
        raise HotlineError("token-exposed", f"the operator token {path} is readable by "
                           "every user of the host, so the node refuses it",
                           hint=f"chmod 600 {path}, or `hotline token` for a new one")
    return token


class OperatorClient:
    def __init__(self, node_dir: Path, config: NodeConfig, timeout: float = 30.0) -> None:
        self.url = base_url(config)
        token = operator_token(node_dir / TOKEN_NAME)
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
            message = str(body.get("message", response.text[:200]))
            field = body.get("field")
            if isinstance(field, str) and message.startswith(field + ":"):
                message = cli_name(field) + message[len(field):]
            raise HotlineError(str(body.get("error", f"http-{response.status_code}")),
                               message, body.get("hint"))
        return body


#: other names a command may give an API request field (tried after the field's own)
ALIASES = {"conv_id": ("conversation",), "message_id": ("message",),
           "receipt": ("kind",)}


#: the parameters of the command running now (set by :func:`track`)
_RUNNING: ContextVar[tuple[Any, ...]] = ContextVar("running_command_params", default=())


def track(command: Any) -> None:
    """Have every command of ``command``'s tree say, while it runs, which parameters it
    has (for :func:`cli_name`). In place; run once on the tree ``main`` runs."""
    callback: Callable[..., Any] | None = getattr(command, "callback", None)
    params = tuple(getattr(command, "params", ()))
    if callback is not None:
        @functools.wraps(callback)
        def running(*args: Any, **kwargs: Any) -> Any:
            token = _RUNNING.set(params)
            try:
                return callback(*args, **kwargs)
            finally:
                _RUNNING.reset(token)
        command.callback = running
    for sub in getattr(command, "commands", {}).values():
        track(sub)


def _command_name(name: str) -> str | None:
    """How the running command spells the API field ``name``: its argument (``CALL_ID``,
    ``INCIDENT``) or its option (``--kind``), found among the command's own parameters,
    so one field named differently by two commands (``text``: ``send TEXT``, ``incident
    add --text``) is named as the user typed it."""
    wanted = [name, name.removesuffix("_id"), name.removesuffix("s"), *ALIASES.get(name, ())]
    flag = "--" + name.replace("_", "-")
    for cand in wanted:
        for param in _RUNNING.get():
            if isinstance(param, TyperArgument) and param.name == cand:
                return param.metavar or cand.upper()
            if isinstance(param, TyperOption) and (param.name == cand or flag in param.opts):
                return str(max(param.opts, key=len))
    return None


def cli_name(field: str) -> str:
    """The command-line name of an operator API request field: ``path.call_id`` is the
    argument ``CALL_ID``, ``body.as`` the option ``--as`` (as the running command names
    them; outside a command, the field's name in those forms)."""
    where, _, name = field.partition(".")
    if not name:
        return field
    base = name.split(".", 1)[0]
    found = _command_name(base)
    if found is not None:  # "--to", not "--to.0": the option is given once per value
        return found
    return name.upper() if where == "path" else "--" + name.replace("_", "-")
