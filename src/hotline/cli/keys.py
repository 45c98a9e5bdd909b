"""``hotline key``: rotate this party's keys, revoke a compromised one, and make the
offline revocation certificate of the current key.

``rotate`` and ``revoke`` ask the running node (they change what it signs with at once
and queue the announcement to every peer); ``revocation-cert`` works offline with the
keystore passphrase. Every command prints the key now in force and its safety number,
which the operators compare with each peer out of band, as at linking.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from hotline.cli.common import DirOption, JsonOption, client, err, out, print_json
from hotline.errors import HotlineError

key_app = typer.Typer(no_args_is_help=True,
                      help="Rotate or revoke this party's keys (docs/protocol.md).")

CertOut = Annotated[Path | None, typer.Option(
    "--cert-out", help="Where to write the new key's revocation certificate (default: "
                       "DIR/revocation-cert-KID.json); store it apart, offline.")]


def _check_cert_out(cert_out: Path | None) -> None:
    """Refuse an existing ``--cert-out`` before the node changes anything (the change
    cannot be undone once committed)."""
    if cert_out is not None and cert_out.exists():
        raise HotlineError("file-exists", f"cert-out: {cert_out} exists; it is never "
                                          "overwritten", hint="give another --cert-out")


def _write_cert(node_dir: Path, cert: dict[str, Any], path: Path | None) -> Path:
    """Write the certificate of the key in force. The node has already committed the
    change: a revocation of a retired key keeps the current key, whose certificate from
    its rotation (or init) is kept, not rewritten; a file that cannot be written still
    leaves the certificate on the screen, never lost."""
    from hotline.admin import revocation_cert_path, write_revocation_cert

    target = path or revocation_cert_path(node_dir, str(cert["kid"]))
    if path is None and target.exists():
        try:
            kept = json.loads(target.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            kept = None
        if isinstance(kept, dict) and kept.get("kid") == cert["kid"] \
                and kept.get("party") == cert["party"]:
            return target
    try:
        return write_revocation_cert(target, cert)
    except HotlineError as exc:
        text = json.dumps(cert, sort_keys=True, separators=(",", ":"))
        raise HotlineError(exc.error_id, f"the key change is done, but {exc.message}; the "
                           f"new key's revocation certificate is: {text}",
                           hint="save it to a file yourself and store it offline") from None


def _report(node_dir: Path, body: dict[str, Any], cert_out: Path | None, as_json: bool,
            what: str) -> None:
    cert_file = _write_cert(node_dir, body["revocation_cert"], cert_out)
    if as_json:
        print_json({"kid": body["kid"], "safety_number": body["safety_number"],
                    "peers": body["peers"], "revocation_cert": str(cert_file)})
        return
    out.print(f"{what}; this party now signs with key [bold]{body['kid']}[/]")
    out.print(f"  safety number {body['safety_number']}")
    told = ", ".join(body["peers"]) or "(no linked peers)"
    out.print(f"  announced to  {told}")
    out.print(f"  revocation certificate of the key in force: {escape(str(cert_file))} (move it "
              "offline)")
    err.print("Read the safety number to each peer by voice, as at linking.")


@key_app.command("rotate")
def key_rotate(node_dir: DirOption, cert_out: CertOut = None, as_json: JsonOption = False
               ) -> None:
    """Make new signing and encryption keys and announce them to every linked peer,
    signed by the old key and the new one (the node must be running)."""
    _check_cert_out(cert_out)
    body = client(node_dir).request("POST", "/api/v1/keys/rotate")
    _report(node_dir, body, cert_out, as_json, "Key rotated")


@key_app.command("revoke")
def key_revoke(node_dir: DirOption,
               cert: Annotated[Path, typer.Option(
                   help="The revocation certificate of the compromised key.")],
               from_ms: Annotated[int | None, typer.Option(
                   "--from", min=0, help="Distrust the key from this time (ms since the "
                                         "epoch); default: now.")] = None,
               cert_out: CertOut = None, as_json: JsonOption = False) -> None:
    """Revoke a compromised key: peers refuse it at once, keep the announcement as
    evidence and raise an alarm; a new key replaces it if it was the current one."""
    try:
        cert_obj = json.loads(cert.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HotlineError("bad-revocation-cert", f"cert: cannot read {cert}: {exc}") from None
    _check_cert_out(cert_out)
    body = client(node_dir).request("POST", "/api/v1/keys/revoke",
                                    json={"cert": cert_obj, "from_ms": from_ms})
    _report(node_dir, body, cert_out, as_json, f"Key {cert_obj.get('kid')} revoked")


@key_app.command("revocation-cert")
def key_revocation_cert(node_dir: DirOption,
                        out_file: Annotated[Path | None, typer.Option(
                            "--out", help="Write it here (default: "
                                          "DIR/revocation-cert-KID.json).")] = None,
                        as_json: JsonOption = False) -> None:
    """Make the offline revocation certificate of the current key (for nodes made before
    `init` wrote one, or after it was lost); store it apart, offline."""
    from hotline.admin import current_keys, revocation_cert_path, write_revocation_cert
    from hotline.cli.passphrase import get_passphrase
    from hotline.clock import SystemClock
    from hotline.protocol.keyhistory import make_certificate

    config, keys = current_keys(node_dir, get_passphrase())
    cert = make_certificate(config.party, keys, SystemClock().now_ms())
    path = write_revocation_cert(out_file or revocation_cert_path(node_dir, keys.public.key_id),
                                 cert)
    if as_json:
        print_json({"kid": keys.public.key_id, "revocation_cert": str(path)})
        return
    out.print(f"Revocation certificate of key {keys.public.key_id} written to "
              f"{escape(str(path))}")
    err.print("Store it apart from the node (offline); anyone holding it can revoke the key.")
