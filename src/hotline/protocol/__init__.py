"""Pure protocol code: canonical encoding, keys, envelopes, receipts, link offers.

Nothing here does I/O or imports the store, the network or the web layer, so every rule
of the wire format can be tested (and property-tested) in isolation.
"""
