"""Calls to roles: directory, escalation, call state machine."""
