"""Escalation: when each step of a frozen chain rings, and the durable timers that fire them."""
