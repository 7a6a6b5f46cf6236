"""Families and links of a generalized linear (mixed) model, as lme4 computes them.

A generalized linear model relates the conditional mean ``mu`` of the response
to the linear predictor through a *link* ``g``, ``eta = g(mu)``, and takes the
response's conditional distribution from a *family*, which fixes the variance
function ``V(mu)`` and the deviance. mmbook has lme4's families for binary
and count data:

==========  ===========================  ===========  ===========================================
family      response                     ``V(mu)``    unit deviance ``d(y, mu)``
==========  ===========================  ===========  ===========================================
binomial    proportion ``y`` of ``m``    mu (1 - mu)  2 [y log(y/mu) + (1-y) log((1-y)/(1-mu))]
            trials (``m = 1``: 0/1)
poisson     count ``y >= 0``             mu           2 [y log(y/mu) - (y - mu)]
==========  ===========================  ===========  ===========================================

and the links logit, probit and cloglog (binomial) and log (poisson). Each
function clamps as lme4's C++ code (``glmFamily.cpp``) does, so that the
penalized iteratively reweighted least squares of :mod:`mmbook.engine.pirls`
takes the same steps: inverse links stay inside ``[eps, 1 - eps]`` (or above
``eps`` for the log link), ``d mu / d eta`` and ``V(mu)`` stay above
``eps``, with ``eps`` the double precision machine epsilon.

A *prior weight* ``w_i`` multiplies observation ``i``'s deviance and
log-likelihood. For the binomial family with ``m_i`` trials (``cbind`` or
``weights=`` trials), R stores ``y_i`` as the proportion of successes and
``w_i = m_i`` (Dobson & Barnett 2018, ch. 7; R's ``binomial()$initialize``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats

__all__ = ["Link", "Family", "LINKS", "binomial", "poisson", "as_family"]

EPS = float(np.finfo(float).eps)


# ------------------------------------------------------------------ links
@dataclass(frozen=True)
class Link:
    """A link function ``eta = g(mu)`` with its inverse and derivative.

    Attributes
    ----------
    name : str
        lme4's name: ``"logit"``, ``"probit"``, ``"cloglog"`` or ``"log"``.
    """

    name: str

    def linkfun(self, mu: np.ndarray) -> np.ndarray:
        """``eta = g(mu)``."""
        mu = np.asarray(mu, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.name == "logit":
                return special.logit(mu)
            if self.name == "probit":
                return special.ndtri(mu)
            if self.name == "cloglog":
                return np.log(-np.log1p(-mu))
            return np.log(mu)

    def linkinv(self, eta: np.ndarray) -> np.ndarray:
        """``mu = g^{-1}(eta)``, clamped to ``[eps, 1 - eps]`` (binomial links) or ``>= eps`` (log)."""
        eta = np.asarray(eta, dtype=float)
        if self.name == "logit":
            mu = special.expit(eta)
        elif self.name == "probit":
            mu = special.ndtr(eta)
        elif self.name == "cloglog":
            mu = -np.expm1(-np.exp(np.minimum(eta, 700.0)))
        else:
            return np.maximum(np.exp(np.minimum(eta, 700.0)), EPS)
        return np.clip(mu, EPS, 1.0 - EPS)

    def mu_eta(self, eta: np.ndarray) -> np.ndarray:
        """``d mu / d eta`` at ``eta``, at least ``eps``."""
        eta = np.asarray(eta, dtype=float)
        if self.name == "logit":
            e = np.exp(-np.abs(eta))
            d = e / (1.0 + e) ** 2
        elif self.name == "probit":
            d = np.exp(-0.5 * eta * eta) / np.sqrt(2.0 * np.pi)
        elif self.name == "cloglog":
            e = np.minimum(eta, 700.0)
            d = np.exp(e - np.exp(e))
        else:
            d = np.exp(np.minimum(eta, 700.0))
        return np.maximum(d, EPS)


LINKS = {"binomial": ("logit", "probit", "cloglog"), "poisson": ("log",)}


# ------------------------------------------------------------------ families
def _ylogy(y: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """``y log(y / mu)`` with ``0 log 0 = 0`` (lme4's ``Y_log_Y``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / mu), 0.0)


@dataclass(frozen=True)
class Family:
    """A response distribution and its link (R's ``family`` object).

    Attributes
    ----------
    name : str
        ``"binomial"`` or ``"poisson"``.
    link : Link
    """

    name: str
    link: Link

    def __str__(self) -> str:
        return f"{self.name}({self.link.name})"

    # lme4's summary line ' Family: binomial  ( logit )'
    @property
    def label(self) -> str:
        return f"{self.name}  ( {self.link.name} )"

    def variance(self, mu: np.ndarray) -> np.ndarray:
        """Variance function ``V(mu)``: ``max(eps, mu (1 - mu))`` or ``mu``."""
        if self.name == "binomial":
            return np.maximum(mu * (1.0 - mu), EPS)
        return mu

    def dev_resid(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """Squared deviance residuals ``w_i d(y_i, mu_i)`` (the family's ``dev.resids``)."""
        if self.name == "binomial":
            return 2.0 * wt * (_ylogy(y, mu) + _ylogy(1.0 - y, 1.0 - mu))
        return 2.0 * wt * (_ylogy(y, mu) - (y - mu))

    def aic(self, y: np.ndarray, n: np.ndarray, mu: np.ndarray, wt: np.ndarray) -> float:
        """``-2 log p(y | mu)`` summed over the observations (the family's ``aic`` without ``2 p``).

        Binomial: with ``m = n`` if any ``n > 1`` else ``m = wt`` (R's rule),
        ``-2 sum (wt/m) log dbinom(round(m y), round(m), mu)``; Poisson:
        ``-2 sum wt log dpois(y, mu)``.
        """
        if self.name == "binomial":
            m = n if np.any(n > 1) else wt
            k = np.rint(m * y)
            m = np.rint(m)
            with np.errstate(divide="ignore", invalid="ignore"):
                scale = np.where(m > 0, wt / np.where(m > 0, m, 1.0), 0.0)
                ll = stats.binom.logpmf(k, m, mu)
            return float(-2.0 * np.sum(np.where(scale > 0, scale * ll, 0.0)))
        return float(-2.0 * np.sum(wt * stats.poisson.logpmf(y, mu)))

    def mustart(self, y: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """Starting means (R's ``family$initialize``): ``(wt y + 1/2) / (wt + 1)`` or ``y + 0.1``."""
        if self.name == "binomial":
            return (wt * y + 0.5) / (wt + 1.0)
        return y + 0.1

    def simulate(self, mu: np.ndarray, trials: np.ndarray, wt: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
        """Responses drawn at the means ``mu``, shape of ``mu`` (R's ``family$simulate``).

        Binomial: ``Binomial(trials, mu) / trials`` (proportions; 0/1 for one
        trial); Poisson: ``Poisson(mu)``. ``mu`` may have a leading
        simulation axis.
        """
        if self.name == "binomial":
            m = np.rint(trials).astype(np.int64)
            return rng.binomial(m, mu) / np.where(m > 0, m, 1)
        return rng.poisson(mu).astype(float)


def binomial(link: str = "logit") -> Family:
    """The binomial family (R's ``binomial(link)``), link ``"logit"``, ``"probit"`` or ``"cloglog"``."""
    return _make("binomial", link)


def poisson(link: str = "log") -> Family:
    """The Poisson family (R's ``poisson(link)``), link ``"log"``."""
    return _make("poisson", link)


def _make(name: str, link: str) -> Family:
    if not isinstance(link, str) or link not in LINKS[name]:
        raise ValueError(f"link {link!r} is not available for the {name} family; "
                         f"choose from {', '.join(LINKS[name])}")
    return Family(name, Link(link))


def as_family(family) -> Family:
    """A :class:`Family` from ``"binomial"``, ``"poisson"``, a Family, or the functions above.

    Raises
    ------
    ValueError
        An unknown family (``gaussian`` is fitted by :func:`mmbook.lmer`).
    TypeError
        Anything else.
    """
    if isinstance(family, Family):
        return family
    if family in (binomial, poisson):
        return family()
    if isinstance(family, str):
        key = family.strip().lower()
        if key in ("binomial", "poisson"):
            return _make(key, LINKS[key][0])
        if key == "gaussian":
            raise ValueError("family 'gaussian' with the identity link is a linear mixed model: use mmbook.lmer")
        raise ValueError(f"family {family!r} is not available; choose 'binomial' or 'poisson'")
    raise TypeError(f"family must be 'binomial', 'poisson' or mmbook.binomial(link=...), "
                    f"got {type(family).__name__}")
