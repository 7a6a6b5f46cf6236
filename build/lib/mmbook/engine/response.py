"""The response half of a linear mixed model: it owns the criterion.

lme4 splits a model into a *predictor* (``X``, ``Z``, ``Lambda(theta)`` and
the Cholesky factor: :class:`mmbook.engine.pls.PLS`) and a *response*
(``y``, weights, and the family), and the response turns the predictor's
pieces into the criterion. For a Gaussian response the criterion is the
profiled deviance of Bates et al. (2015, eqs. 34 and 41):

.. math::

    -2\\ell(\\theta) = \\log|L_\\theta|^2 + n\\left(1 + \\log\\frac{2\\pi r^2}{n}\\right),
    \\qquad
    -2\\ell_R(\\theta) = \\log|L_\\theta|^2 + \\log|R_X|^2
        + (n-p)\\left(1 + \\log\\frac{2\\pi r^2}{n-p}\\right),

with ``r^2`` the penalized weighted residual sum of squares (``pwrss``). A
GLMM response replaces this class and reweights the same predictor at each
PIRLS step (:meth:`mmbook.engine.pls.PLS.reweight`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["GaussianResponse"]

_LOG2PI = float(np.log(2.0 * np.pi))


@dataclass(frozen=True)
class GaussianResponse:
    """A Gaussian response: the profiled REML criterion or ML deviance.

    Parameters
    ----------
    n, p : int
        Numbers of observations and of fixed effects.
    REML : bool
        REML criterion (True) or ML deviance (False).
    logdet_w : float
        ``sum(log w_i)`` of the prior weights (0 without weights): the
        deviance of a weighted fit subtracts it, as lme4's does (``ldW`` in
        ``lmerResp``). With it the criterion is the (restricted) likelihood of
        ``y ~ N(X beta, sigma^2 (W^{-1} + Z Lambda Lambda' Z'))``; ``n`` then
        counts the observations with positive weight (a weight of 0 removes
        an observation; lme4 1.1-31 returns an infinite criterion instead).

    Raises
    ------
    ValueError
        REML with ``n <= p``.
    """

    n: int
    p: int
    REML: bool = True
    logdet_w: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "REML", bool(self.REML))
        if self.REML and self.n <= self.p:
            raise ValueError(f"REML needs more observations (n={self.n}) than fixed effects (p={self.p})")

    @property
    def dof(self) -> int:
        """Degrees of freedom of ``sigma^2``: ``n - p`` (REML) or ``n`` (ML)."""
        return self.n - self.p if self.REML else self.n

    def objective(self, logdet_L: float, logdet_RX: float, pwrss: float) -> float:
        """The profiled criterion from the predictor's pieces (``inf`` if ``pwrss <= 0``)."""
        if not pwrss > 0:
            return np.inf
        d = self.dof
        crit = logdet_L + d * (1.0 + _LOG2PI + np.log(pwrss / d)) - self.logdet_w
        if self.REML:
            crit += logdet_RX
        return float(crit)

    def deviance_at(self, logdet_L: float, pwrss: float, sigma: float) -> float:
        """ML deviance at a given ``sigma`` (not profiled), for profiling ``sigma`` itself.

        ``-2 log L = log|L_theta|^2 + n log(2 pi sigma^2) + r^2 / sigma^2 - sum(log w_i)``.
        """
        return float(logdet_L + self.n * (_LOG2PI + 2.0 * np.log(sigma)) + pwrss / sigma ** 2 - self.logdet_w)

    def sigma(self, pwrss: float) -> float:
        """Residual standard deviation at the optimum: ``sqrt(pwrss / dof)``."""
        return float(np.sqrt(pwrss / self.dof))
