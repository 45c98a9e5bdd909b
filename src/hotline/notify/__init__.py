"""Outbound notification channels: how an escalation step reaches a person.

A channel makes exactly one delivery attempt, bounded by its own timeout, and either
returns (the receiver took the alert) or raises :class:`~hotline.notify.channels.ChannelError`
saying whether trying again could help. Retrying, backoff and durability belong to the
caller (the notifications table), so that one place decides how hard to try and every
channel stays a small, testable piece of I/O.
"""
