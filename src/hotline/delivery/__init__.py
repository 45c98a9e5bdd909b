"""Outbound delivery: the outbox, one sender per peer, one backoff policy, the transport."""
