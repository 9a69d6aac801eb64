"""The two-coins problem: which coin was tossed is hidden; each trial is n tosses of one coin.

    z_n ~ Categorical(weights)                 (a fair pick: weights fixed at 1/k)
    heads_n | z_n = j ~ Binomial(tosses, probs_j)

EM splits each trial's heads and tails between the coins in proportion to the
posterior of each coin (E-step) and sets each coin's bias to its share of heads
(M-step), exactly as in the seed article.
"""

from __future__ import annotations

from .families.binomial import Binomial
from .mixture import Mixture
from .registry import register


@register
class TwoCoins(Mixture):
    """A binomial mixture: ``k`` coins, ``tosses`` tosses per trial.

    Args:
        k: number of coins.
        tosses: tosses per trial.
        weights: ``None`` to learn how often each coin is picked, or fixed
            weights such as ``[0.5, 0.5]`` (a fair pick, as in the seed article).

    Parameters: ``probs: (k,)`` each coin's chance of heads, ``weights: (k,)``.
    """

    name = "two_coins"

    def __init__(self, k: int = 2, tosses: int = 10, weights=None, prior: dict | None = None):
        fixed = None if weights is None else {"weights": weights}
        super().__init__(Binomial(tosses), k, fixed=fixed, prior=prior)
        self.tosses = self.family.tosses
