"""The node's own health: alarms, supervised background tasks, and the clock watch."""
