"""HTTP edges: the operator API (token-protected) and the federation API (envelopes only).

Errors from the domain are translated into HTTP answers here and nowhere else.
"""
