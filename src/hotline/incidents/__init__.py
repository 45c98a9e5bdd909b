"""Incidents: a shared case among parties and its one timeline (model, service)."""
