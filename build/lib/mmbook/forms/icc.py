"""The intraclass correlation of a random-intercept model, with an interval.

In the model :math:`y_i = x_i^\\top\\beta + \\gamma_{c[i]} + e_i`, with
:math:`\\gamma_c \\sim N(0, \\tau^2)` and :math:`e_i \\sim N(0, \\sigma^2)`, two
observations in the same cluster share :math:`\\gamma_c`, so their correlation
is the intraclass correlation

.. math:: \\rho = \\frac{\\tau^2}{\\tau^2 + \\sigma^2} = \\frac{\\theta^2}{1 + \\theta^2},
          \\qquad \\theta = \\tau / \\sigma ,

also the share of the total variance that lies between clusters. It depends
on the parameters only through lme4's relative standard deviation
:math:`\\theta`, an increasing function of it, which gives the profile
interval below its simple form. :meth:`mmbook.LmerFit.icc` computes the
estimate; :func:`icc_interval` adds an interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

__all__ = ["ICCInterval", "icc_interval"]


@dataclass(frozen=True)
class ICCInterval:
    """An intraclass correlation with its confidence interval.

    Attributes
    ----------
    estimate : float
        The fit's ICC, ``tau^2 / (tau^2 + sigma^2)``.
    lower, upper : float
        Limits of the interval.
    level : float
        Confidence level, e.g. 0.95.
    method : str
        ``"profile"`` or ``"boot"``.
    nsim : int or None
        Bootstrap resamples (``None`` for the profile interval).
    """

    estimate: float
    lower: float
    upper: float
    level: float
    method: str
    nsim: int | None = None

    def __str__(self) -> str:
        how = "profile-likelihood" if self.method == "profile" else f"parametric bootstrap ({self.nsim} resamples)"
        return (f"ICC = {self.estimate:.3f}, {100 * self.level:g}% {how} interval "
                f"[{self.lower:.3f}, {self.upper:.3f}]")


def _check_random_intercept(fit) -> None:
    terms = getattr(fit, "terms", None)
    if terms is None or not hasattr(fit, "pls"):
        raise TypeError(f"expected a fitted model from mmbook.lmer, got {type(fit).__name__}")
    if len(terms) != 1 or list(terms[0].cnames) != ["(Intercept)"]:
        have = ", ".join("(" + t.bar.text + ")" for t in terms)
        raise ValueError("the intraclass correlation is defined here for a model whose only random-effects "
                         f"term is a random intercept (1 | g); this model has {have}")


def _icc_of_theta(theta):
    theta = np.asarray(theta, dtype=float)
    return theta ** 2 / (1.0 + theta ** 2)


def _profile(fit, level: float) -> tuple[float, float]:
    """ICC limits where the profiled ML deviance rises by the chi-square(1) quantile."""
    ml = fit.refit_ml()
    dev = ml.pls.objective                      # -2 log L, beta and sigma profiled out, as a function of theta
    th_hat, d_hat = float(ml.theta[0]), float(ml.objective)
    cut = stats.chi2.ppf(level, df=1)

    def excess(th):
        return dev(np.array([th])) - d_hat - cut

    # lower limit: 0 (tau = 0) when the deviance there is still within the cut-off
    lower = 0.0
    if th_hat > 0 and excess(0.0) > 0:
        lower = optimize.brentq(excess, 0.0, th_hat, xtol=1e-12, rtol=1e-12)
    hi = max(2.0 * th_hat, 1.0)
    for _ in range(60):
        if excess(hi) > 0:
            break
        hi *= 2.0
    else:
        raise RuntimeError("the profiled deviance does not rise above the cut-off: no finite upper limit")
    upper = optimize.brentq(excess, th_hat, hi, xtol=1e-12, rtol=1e-12)
    return float(_icc_of_theta(lower)), float(_icc_of_theta(upper))


def _boot(fit, level: float, nsim: int, seed, progress: bool) -> tuple[float, float]:
    from ..engine.bootstrap import bootstrap

    draws = bootstrap(fit, lambda f: f.icc(), nsim=nsim, seed=seed, progress=progress)
    draws = np.asarray(draws, dtype=float).ravel()
    draws = draws[np.isfinite(draws)]
    if draws.size < 2:
        raise RuntimeError("too few bootstrap refits succeeded to form an interval")
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def icc_interval(fit, method: str = "profile", level: float = 0.95, nsim: int = 200, seed=None,
                 progress: bool = False) -> ICCInterval:
    """Confidence interval for the intraclass correlation of a random-intercept model.

    .. math:: \\rho = \\frac{\\tau^2}{\\tau^2 + \\sigma^2} = \\frac{\\theta^2}{1 + \\theta^2}

    Parameters
    ----------
    fit : LmerFit
        A model whose only random-effects term is ``(1 | g)``.
    method : {"profile", "boot"}
        ``"profile"``: since :math:`\\rho` is an increasing function of
        :math:`\\theta` alone, its profile-likelihood interval is the image of
        :math:`\\theta`'s: the values where the profiled ML deviance
        :math:`d(\\theta)` (``beta`` and ``sigma`` profiled out) exceeds its
        minimum by :math:`\\chi^2_{1}(\\text{level})`,

        .. math:: \\{\\theta : d(\\theta) - d(\\hat\\theta) \\le \\chi^2_{1,\\,\\text{level}}\\},

        with the lower limit 0 when :math:`d(0)` is within the cut-off. A REML
        fit is profiled on the ML deviance, as lme4's ``profile`` does.
        ``"boot"``: percentiles (numpy's default quantile, R's type 7) of the
        ICC over ``nsim`` parametric bootstrap refits
        (:func:`mmbook.engine.bootstrap.bootstrap`, REML or ML as the fit).
    level : float
        Confidence level.
    nsim : int
        Bootstrap resamples (``"boot"`` only).
    seed : int or numpy.random.Generator, optional
        Bootstrap seed (``"boot"`` only): the same seed gives the same interval.
    progress : bool
        Show the bootstrap's progress bar.

    Returns
    -------
    ICCInterval
        ``estimate`` is ``fit.icc()``; ``lower`` and ``upper`` the limits.

    Raises
    ------
    ValueError
        The model has random effects other than a single random intercept,
        or ``method`` / ``level`` is not valid.
    """
    _check_random_intercept(fit)
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level!r}")
    method = str(method).lower()
    if method == "profile":
        lower, upper = _profile(fit, level)
        nsim_out = None
    elif method in ("boot", "bootstrap"):
        if isinstance(nsim, bool) or not isinstance(nsim, (int, np.integer)) or nsim < 2:
            raise ValueError(f"nsim must be an integer >= 2, got {nsim!r}")
        lower, upper = _boot(fit, level, int(nsim), seed, progress)
        method, nsim_out = "boot", int(nsim)
    else:
        raise ValueError(f"method must be 'profile' or 'boot', got {method!r}")
    return ICCInterval(estimate=fit.icc(), lower=lower, upper=upper, level=float(level), method=method,
                       nsim=nsim_out)
