"""Where the keystore passphrase comes from: ``HOTLINE_PASSPHRASE``, else a prompt."""

from __future__ import annotations

import getpass
import os
import sys

from hotline.errors import ConfigError

ENV = "HOTLINE_PASSPHRASE"


def get_passphrase(*, confirm: bool = False) -> str:
    value = os.environ.get(ENV)
    if value:
        return value
    if not sys.stdin.isatty():
        raise ConfigError("no-passphrase", "no keystore passphrase given",
                          hint=f"set {ENV} or run the command in a terminal")
    first = getpass.getpass("Keystore passphrase: ")
    if confirm and getpass.getpass("Repeat passphrase: ") != first:
        raise ConfigError("passphrase-mismatch", "the two passphrases differ")
    if not first:
        raise ConfigError("empty-passphrase", "the keystore passphrase must not be empty")
    return first
