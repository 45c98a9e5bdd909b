"""This node's key lifecycle: rotation and revocation (docs/protocol.md §6.2)."""
