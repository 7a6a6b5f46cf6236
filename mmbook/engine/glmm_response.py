"""The response half of a generalized linear mixed model (lme4's ``glmResp``).

Where a Gaussian response (:mod:`mmbook.engine.response`) turns the
predictor's pieces into a profiled deviance, a GLM response holds ``y``, the
prior weights ``w``, the trials, the offset and the family, and gives

* the conditional means ``mu = g^{-1}(eta)`` of a linear predictor ``eta``;
* the *working* weights and residuals of one PIRLS step,

  .. math::  \\sqrt{W_{ii}} = \\frac{d\\mu_i}{d\\eta_i}\\sqrt{\\frac{w_i}{V(\\mu_i)}},
             \\qquad r_i = \\frac{y_i - \\mu_i}{d\\mu_i / d\\eta_i};

* the deviance residuals ``w_i d(y_i, mu_i)`` and ``-2 log p(y | mu)``;
* the Laplace approximation to the deviance (Bates et al. 2015; lme4's
  ``glmResp::Laplace``):

  .. math::  -2\\log L(\\theta, \\beta) \\approx -2\\log p(y \\mid \\tilde\\mu)
             + \\|\\tilde u\\|^2 + \\log|L_\\theta|^2,

  at the conditional mode ``u~`` that PIRLS finds (:mod:`mmbook.engine.pirls`).

``-2 log p(y | mu)`` equals the sum of the deviance residuals plus a constant,
``-2 log p(y | mu = y)`` (the saturated model). lme4's adaptive quadrature
(nAGQ > 1) works with the deviance residuals and leaves that constant out of
the deviance it reports: :attr:`GLMResponse.saturated_constant` is it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .glm_family import Family

__all__ = ["GLMResponse"]


def _xlogx(x: np.ndarray) -> np.ndarray:
    """``x log x`` with ``0 log 0 = 0``."""
    return np.where(x > 0, x * np.log(np.where(x > 0, x, 1.0)), 0.0)


@dataclass
class GLMResponse:
    """``y``, prior weights, trials, offset and family of a GLMM.

    Parameters
    ----------
    family : Family
    y : ndarray, shape (n,)
        The response as R stores it (proportions of successes for binomial
        data with several trials).
    weights : ndarray, shape (n,)
        Prior weights (the trials included).
    trials : ndarray, shape (n,)
        R's ``n`` (trials of a ``cbind`` response, else 1).
    offset : ndarray, shape (n,)
    """

    family: Family
    y: np.ndarray
    weights: np.ndarray
    trials: np.ndarray
    offset: np.ndarray
    saturated_constant: float = field(init=False)
    _exact_constant: bool = field(init=False, repr=False)
    _dev_const: float | None = field(init=False, repr=False, default=None)
    _binary: np.ndarray | None = field(init=False, repr=False, default=None)

    def __post_init__(self):
        self.y = np.asarray(self.y, dtype=float)
        self.weights = np.asarray(self.weights, dtype=float)
        self.trials = np.asarray(self.trials, dtype=float)
        self.offset = np.asarray(self.offset, dtype=float)
        # the part of the deviance that does not depend on mu (see deviance)
        y, w = self.y, self.weights
        self._binary = None
        if self.family.name == "binomial":
            self._dev_const = float(2.0 * np.dot(w, _xlogx(y) + _xlogx(1.0 - y)))
            if np.all((y == 0) | (y == 1)):
                self._binary = y == 1
        else:
            self._dev_const = float(2.0 * np.dot(w, _xlogx(y) - y))
        # -2 log p(y | mu) - sum of deviance residuals does not depend on mu for whole-number data;
        # check at two means and use it, else compute -2 log p(y | mu) directly each time
        mu0 = self.family.mustart(self.y, self.weights)
        mu1 = 0.5 * (mu0 + self.family.link.linkinv(np.zeros_like(mu0)))
        c0 = self.family.aic(self.y, self.trials, mu0, self.weights) - self.deviance(mu0)
        c1 = self.family.aic(self.y, self.trials, mu1, self.weights) - self.deviance(mu1)
        self.saturated_constant = float(c0)
        self._exact_constant = bool(abs(c0 - c1) <= 1e-9 * (1.0 + abs(c0)))

    @property
    def n(self) -> int:
        return len(self.y)

    def mu(self, eta: np.ndarray) -> np.ndarray:
        """Conditional means ``g^{-1}(eta)``."""
        return self.family.link.linkinv(eta)

    def working(self, eta: np.ndarray, mu: np.ndarray):
        """Square roots of the working weights and the working residuals at ``eta``.

        Returns
        -------
        sqrtw, r : ndarray, shape (n,)
            ``sqrt(W_ii)`` and ``(y_i - mu_i) / (d mu_i / d eta_i)``.
        """
        d = self.family.link.mu_eta(eta)
        sqrtw = d * np.sqrt(self.weights / self.family.variance(mu))
        return sqrtw, (self.y - mu) / d

    def dev_resid(self, mu: np.ndarray) -> np.ndarray:
        """Squared deviance residuals ``w_i d(y_i, mu_i)``, shape (n,) (or (k, n) for a stack of means)."""
        return self.family.dev_resid(self.y, mu, self.weights)

    def deviance(self, mu: np.ndarray) -> float:
        """Sum of the squared deviance residuals (the inner loop's hot spot: one logarithm per row).

        Binomial: ``sum 2 w [y log y + (1-y) log(1-y)] - 2 w [y log mu + (1-y) log(1-mu)]``,
        with the first sum computed once (and one logarithm per row for 0/1 data);
        Poisson: ``sum 2 w (y log y - y) - 2 w (y log mu - mu)``.
        """
        if self._dev_const is None:
            return float(np.sum(self.dev_resid(mu)))
        if self.family.name == "binomial":
            if self._binary is not None:
                return self._dev_const - 2.0 * float(np.dot(self.weights, np.log(np.where(self._binary, mu, 1.0 - mu))))
            ll = self.y * np.log(mu) + (1.0 - self.y) * np.log1p(-mu)
        else:
            ll = self.y * np.log(mu) - mu
        return self._dev_const - 2.0 * float(np.dot(self.weights, ll))

    def aic(self, mu: np.ndarray, deviance: float | None = None) -> float:
        """``-2 log p(y | mu)`` (lme4's ``glmResp::aic``)."""
        if self._exact_constant:
            return (self.deviance(mu) if deviance is None else deviance) + self.saturated_constant
        return self.family.aic(self.y, self.trials, mu, self.weights)

    def laplace(self, logdet_L: float, sqrL: float, mu: np.ndarray, deviance: float | None = None) -> float:
        """Laplace deviance ``-2 log p(y | mu) + ||u||^2 + log|L|^2`` (lme4's ``glmResp::Laplace``)."""
        return float(logdet_L + sqrL + self.aic(mu, deviance))

    def mustart(self) -> np.ndarray:
        """Starting means (R's ``family$initialize``)."""
        return self.family.mustart(self.y, self.weights)
