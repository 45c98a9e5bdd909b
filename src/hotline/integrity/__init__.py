"""The node's state checked against its log, and repaired from it where the log is
authoritative (``docs/log.md``, "The start-up state check")."""
