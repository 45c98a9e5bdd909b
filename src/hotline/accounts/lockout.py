"""How long an account stays locked after failed attempts: pure, so it can be reasoned
about and tested on its own.

A few mistakes are free (people mistype); after that every further failure doubles the
wait, up to a cap. Guessing online thus gets exponentially slower, while an attacker who
locks an operator out on purpose can do so for at most :attr:`LockoutPolicy.max_seconds`
at a time, and an administrator can always ``hotline operator unlock``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LockoutPolicy:
    free_attempts: int = 5
    base_seconds: float = 30
    max_seconds: float = 3600


def lock_seconds(failures: int, policy: LockoutPolicy) -> float:
    """Seconds to lock for after ``failures`` consecutive failures: 0 below
    ``free_attempts``, then ``base * 2**(failures - free_attempts)``, capped at ``max``."""
    if failures < policy.free_attempts:
        return 0.0
    # Past 2**1000 every sane cap is reached long ago; the bound keeps 2.0**n finite.
    exponent = min(failures - policy.free_attempts, 1000)
    return float(min(policy.base_seconds * 2.0 ** exponent, policy.max_seconds))
