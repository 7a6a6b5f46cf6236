"""R² and the intraclass correlation of a linear mixed model (Nakagawa & Schielzeth).

The variance of :math:`y` is split into three parts (Nakagawa & Schielzeth
2013; Johnson 2014 and Nakagawa, Johnson & Schielzeth 2017 for random
slopes):

.. math::

    \\sigma^2_f = \\widehat{\\mathrm{Var}}(X\\hat\\beta), \\qquad
    \\sigma^2_r = \\sum_k \\frac1n \\sum_{i=1}^n z_{ki}'\\, \\psi_k\\, z_{ki}, \\qquad
    \\sigma^2_e = \\hat\\sigma^2,

the sample variance (divisor ``n - 1``) of the fixed part of the fitted
values, the random effects' variance averaged over the rows (``z_ki`` is row
``i`` of term ``k``'s model matrix, so a random slope contributes according
to the spread of its covariate), and the residual variance. Then

.. math::

    R^2_m = \\frac{\\sigma^2_f}{\\sigma^2_f + \\sigma^2_r + \\sigma^2_e}, \\quad
    R^2_c = \\frac{\\sigma^2_f + \\sigma^2_r}{\\sigma^2_f + \\sigma^2_r + \\sigma^2_e}, \\quad
    \\mathrm{ICC}_{adj} = \\frac{\\sigma^2_r}{\\sigma^2_r + \\sigma^2_e}, \\quad
    \\mathrm{ICC}_{unadj} = \\frac{\\sigma^2_r}{\\sigma^2_f + \\sigma^2_r + \\sigma^2_e}.

These are the R package performance's ``r2_nakagawa`` and ``icc`` (via
insight's ``get_variance``) with two differences, both where performance
0.10.2 / insight 0.19.0 lose a variance: every random-effects term counts
(insight keeps only the first term of a grouping factor, so the slope of
``(x || g)`` is dropped), and each term uses its own model matrix (insight
takes the columns of ``X`` with the same names, and drops a random slope
whose covariate is not a fixed effect).
"""

from __future__ import annotations

import warnings

import numpy as np

from .ftests import check_fit

__all__ = ["variance_components", "r2", "icc"]

#: performance's ``tolerance``: a fit with a diagonal ``theta`` below it is singular.
SINGULAR_TOL = 1e-5


def variance_components(fit) -> dict:
    """``{"fixed": sigma_f^2, "random": sigma_r^2, "residual": sigma_e^2}`` (insight's ``get_variance``)."""
    check_fit(fit)
    if getattr(fit.mf, "smooths", None):
        raise NotImplementedError("R2 and ICC of models with smooth terms s(x) are not defined here: a smooth is "
                                  "part of the mean, not a random-effects variance")
    eta = fit.X @ fit.beta
    var_fixed = float(np.var(eta, ddof=1)) if len(eta) > 1 else 0.0
    var_random = 0.0
    for k, t in enumerate(fit.terms):
        psi = fit.psi(k)
        var_random += float(np.mean(np.einsum("na,ab,nb->n", t.z, psi, t.z)))
    return {"fixed": var_fixed, "random": var_random, "residual": float(fit.sigma ** 2)}


def _singular(fit) -> bool:
    return bool(np.any(np.abs(fit.theta[fit.pls.lower[:len(fit.theta)] == 0]) < SINGULAR_TOL))


def r2(fit) -> dict:
    """Nakagawa & Schielzeth's marginal and conditional R² (performance's ``r2_nakagawa``).

    Returns
    -------
    dict
        ``{"marginal": R2_m, "conditional": R2_c}``. For a singular fit
        (a variance on its boundary) the random variance is not used, as in
        performance: ``marginal = sigma_f^2 / (sigma_f^2 + sigma_e^2)`` and
        ``conditional`` is NaN, with a warning.
    """
    v = variance_components(fit)
    f, r, e = v["fixed"], v["random"], v["residual"]
    if _singular(fit):
        warnings.warn("singular fit (a random-effects variance is at its boundary): the conditional R2 is "
                      "not computed and the marginal R2 ignores the random effects, as performance::r2 does",
                      UserWarning, stacklevel=2)
        return {"marginal": f / (f + e), "conditional": np.nan}
    return {"marginal": f / (f + r + e), "conditional": (f + r) / (f + r + e)}


def icc(fit) -> dict:
    """The adjusted and unadjusted intraclass correlation (performance's ``icc``).

    Returns
    -------
    dict
        ``{"adjusted": sigma_r^2 / (sigma_r^2 + sigma_e^2),
        "unadjusted": sigma_r^2 / (sigma_f^2 + sigma_r^2 + sigma_e^2)}``.
        For a single random intercept ``(1 | g)`` the adjusted ICC is
        ``tau^2 / (tau^2 + sigma^2)`` (:meth:`LmerFit.icc`). NaN for a
        singular fit, with a warning (performance returns NA).
    """
    v = variance_components(fit)
    f, r, e = v["fixed"], v["random"], v["residual"]
    if _singular(fit):
        warnings.warn("singular fit (a random-effects variance is at its boundary): the ICC is not computed, "
                      "as performance::icc", UserWarning, stacklevel=2)
        return {"adjusted": np.nan, "unadjusted": np.nan}
    return {"adjusted": r / (r + e), "unadjusted": r / (f + r + e)}
