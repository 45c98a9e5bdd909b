"""Operator accounts for the web console: who may sign in, and how they prove it.

The directory says who the operators are; an account says how one of them proves it is
really them at the console: a password (Argon2id, so a stolen database does not give the
passwords away cheaply) and a time-based one-time code (TOTP, RFC 6238) from an
authenticator app, so a phished or reused password alone is not enough. Repeated failures
lock the account for a growing time, which turns online guessing into a hopeless
exercise without locking an operator out for good.

Every attempt and every change is written to the tamper-evident log in the transaction
that makes it, because "who was at the console when the call was declined" is exactly
the kind of question the log exists to answer after the fact.

* :mod:`passwords`, :mod:`totp`, :mod:`lockout` — pure rules and primitives (from
  ``cryptography`` and ``segno``; nothing home-made).
* :mod:`service` — the running node's side: log in, sessions, changes by the operator.
* :mod:`offline` — the administrator's side (``hotline operator ...``), beside or without
  a running node.
"""
