"""How the node's own process log is written: terse text (the default) or one JSON
object per line (``hotline serve --log-format json``), with the ids of what a line
concerns (request, envelope, call, conversation) carried in :mod:`contextvars`.

Not to be confused with :mod:`hotline.log`, the tamper-evident log of what crossed the
line; this is the operational log a person or a log shipper reads.
"""
