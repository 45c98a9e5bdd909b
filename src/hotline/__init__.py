"""Hotline: a federated crisis hotline.

Each organisation runs a node; nodes keep a signed, encrypted line between them so that a
call or message to a counterpart either arrives exactly once, in order, with a signed
receipt, or the failure is known at once.
"""

__version__ = "0.1.0"
