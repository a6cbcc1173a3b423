"""From-scratch peers (tinygrad, DeZero, MyGrad, Chainer, HIPS autograd) for the benchmark cases.

``implementations(group, case)`` returns the peers' setups for one case; filled in per peer.
"""

from __future__ import annotations


def implementations(group: str, case: str) -> dict:
    return {}
