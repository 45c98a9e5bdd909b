"""Inbound federation: verify, persist, release in order, then receipt."""
