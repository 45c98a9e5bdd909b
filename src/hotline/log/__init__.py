"""Tamper-evident logs: Merkle trees in the style of Certificate Transparency.

A log whose owner signs only the root of a Merkle tree over its entries can later prove
two things cheaply to anyone holding such a signed root: that an entry is in the log
(an inclusion proof) and that today's log extends yesterday's without rewriting it (a
consistency proof). Rewriting history then means signing two roots that cannot both be
true, which is evidence in itself.
"""
