"""Satterthwaite's degrees of freedom for linear mixed models, as lmerTest computes them.

For a contrast :math:`\\ell'\\beta` the variance of its estimate,
:math:`v(\\varphi) = \\ell' V_\\beta(\\varphi)\\, \\ell`, is a function of the
variance parameters :math:`\\varphi = (\\theta, \\sigma)`. Satterthwaite's
approximation matches the first two moments of :math:`\\hat v` to a scaled
:math:`\\chi^2_\\nu` (Kuznetsova, Brockhoff & Christensen 2017, eq. 4):

.. math::

    \\nu = \\frac{2\\, v(\\hat\\varphi)^2}{g' A\\, g}, \\qquad
    g = \\frac{\\partial v}{\\partial \\varphi}\\Big|_{\\hat\\varphi}, \\qquad
    A = 2 H^{-1},

where :math:`H` is the Hessian of the deviance with respect to
:math:`\\varphi` (so :math:`A` is the asymptotic covariance of
:math:`\\hat\\varphi`). Two functions of :math:`\\varphi` are needed, and
this module builds both from the engine's penalized least squares
(:meth:`mmbook.engine.pls.PLS.factor`), as lmerTest builds them from lme4's
``devfun``:

* the deviance (lmerTest's ``devfun_vp``), with :math:`\\sigma` free instead
  of profiled out:

  .. math::

      -2\\ell(\\theta, \\sigma) = \\log|L_\\theta|^2 + \\frac{r^2(\\theta)}{\\sigma^2}
          + n \\log(2\\pi\\sigma^2)
          \\;\\Big[ + \\log|R_X|^2 - p \\log(2\\pi\\sigma^2) \\text{ for REML} \\Big];

* the covariance of :math:`\\hat\\beta` (lmerTest's ``get_covbeta``),
  :math:`V_\\beta(\\theta, \\sigma) = \\sigma^2 (R_X R_X')^{-1}`.

Their Hessian and Jacobian are taken numerically with numDeriv's Richardson
method and its default steps (:mod:`mmbook.inference.numderiv`), so the
degrees of freedom agree with lmerTest's to its printed digits.
"""

from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla

from .numderiv import hessian, jacobian

__all__ = ["VarparFunctions", "SatterthwaiteSetup", "satterthwaite_setup", "satterthwaite_1d",
           "satterthwaite_md", "fstat_ddf"]

_LOG2PI = float(np.log(2.0 * np.pi))


class VarparFunctions:
    """The deviance and ``vcov(beta)`` as functions of ``varpar = (theta, sigma)``.

    With correlated residuals ``theta`` ends with the correlation parameter
    (on nlme's unconstrained scale) and the deviance includes ``log|R|``.

    Parameters
    ----------
    pls : mmbook.engine.pls.PLS
        The fit's penalized least squares problem (``fit.pls``).
    REML : bool
        REML criterion (lmerTest's ``devfun_vp(reml = TRUE)``) or ML deviance.

    Notes
    -----
    Evaluations at the same ``theta`` (which numerical derivatives with
    respect to ``sigma`` make often) reuse one factorisation.
    """

    def __init__(self, pls, REML: bool):
        self.pls = pls
        self.REML = bool(REML)
        self.n, self.p = pls.n, pls.p
        self._cache: dict[bytes, tuple] = {}

    def _pieces(self, theta: np.ndarray):
        key = np.asarray(theta, dtype=float).tobytes()
        hit = self._cache.get(key)
        if hit is None:
            F = self.pls.factor(np.asarray(theta, dtype=float))
            RX = F.RX
            RXinv = sla.solve_triangular(RX, np.eye(self.p), lower=True) if self.p else RX
            # correlated residuals: log|R| of the whitening at this theta's correlation parameter
            hit = (F.logdet_L + getattr(self.pls, "logdet_R", 0.0), F.logdet_RX, F.pwrss, RXinv.T @ RXinv)
            if len(self._cache) > 512:
                self._cache.clear()
            self._cache[key] = hit
        return hit

    def deviance(self, varpar) -> float:
        """``-2 log L`` (or the REML criterion) at ``varpar = (theta, sigma)``: lmerTest's ``devfun_vp``."""
        varpar = np.asarray(varpar, dtype=float)
        theta, sigma2 = varpar[:-1], varpar[-1] ** 2
        logdet_L, logdet_RX, pwrss, _ = self._pieces(theta)
        dev = logdet_L + pwrss / sigma2 + self.n * (_LOG2PI + np.log(sigma2))
        if self.REML:
            dev += logdet_RX - self.p * (_LOG2PI + np.log(sigma2))
        return float(dev)

    def covbeta(self, varpar) -> np.ndarray:
        """``sigma^2 (R_X R_X')^{-1}`` at ``varpar``: lmerTest's ``get_covbeta``, shape (p, p)."""
        varpar = np.asarray(varpar, dtype=float)
        return varpar[-1] ** 2 * self._pieces(varpar[:-1])[3]


@dataclass(frozen=True)
class SatterthwaiteSetup:
    """What Satterthwaite's method needs, computed once per fit (lmerTest's ``lmerModLmerTest`` slots).

    Attributes
    ----------
    varpar : ndarray, shape (k,)
        ``(theta, sigma)`` at the optimum.
    beta : ndarray, shape (p,)
    sigma : float
    vcov_beta : ndarray, shape (p, p)
        ``vcov(beta)`` at the optimum.
    hessian : ndarray, shape (k, k)
        Numerical Hessian of the deviance with respect to ``varpar``.
    vcov_varpar : ndarray, shape (k, k)
        ``2 H^+``: twice the pseudo-inverse of the Hessian over its
        eigenvalues above 1e-8 (lmerTest's ``vcov_varpar``).
    jac : ndarray, shape (p, p, k)
        ``jac[:, :, i]`` is the derivative of ``vcov(beta)`` with respect to
        ``varpar[i]`` (lmerTest's ``Jac_list``).
    """

    varpar: np.ndarray
    beta: np.ndarray
    sigma: float
    vcov_beta: np.ndarray
    hessian: np.ndarray
    vcov_varpar: np.ndarray
    jac: np.ndarray


def _hessian_inverse(h: np.ndarray, tol: float = 1e-8) -> np.ndarray:
    """``2 h^+`` over the positive eigenvalues, with lmerTest's convergence warnings."""
    evals, evecs = np.linalg.eigh(h)
    evals, evecs = evals[::-1], evecs[:, ::-1]  # R's eigen(): decreasing
    neg, zero = evals < -tol, (evals > -tol) & (evals < tol)
    if neg.any():
        warnings.warn(f"Model failed to converge with {neg.sum()} negative eigenvalue"
                      f"{'s' if neg.sum() > 1 else ''} of the Hessian of the deviance: "
                      + " ".join(f"{v:.1e}" for v in evals[neg])
                      + " (Satterthwaite's degrees of freedom are unreliable)", RuntimeWarning, stacklevel=4)
    if zero.any():
        warnings.warn(f"Model may not have converged with {zero.sum()} eigenvalue"
                      f"{'s' if zero.sum() > 1 else ''} of the Hessian of the deviance close to zero: "
                      + " ".join(f"{v:.1e}" for v in evals[zero]), RuntimeWarning, stacklevel=4)
    pos = evals > tol
    V = evecs[:, pos]
    return 2.0 * (V / evals[pos]) @ V.T


def satterthwaite_setup(fit=None, *, pls=None, REML=None, varpar=None, vcov_beta=None, beta=None
                        ) -> SatterthwaiteSetup:
    """The Hessian of the deviance and the Jacobian of ``vcov(beta)`` with respect to ``(theta, sigma)``.

    lmerTest's ``as_lmerModLT``: ``H`` by numDeriv's ``hessian`` of
    ``devfun_vp`` and the Jacobian by numDeriv's ``jacobian`` of
    ``get_covbeta``, both at ``varpar = (theta, sigma)``.

    Parameters
    ----------
    fit : LmerFit
        Default source of everything below; the result is cached on the fit.
    pls, REML, varpar, vcov_beta, beta : optional
        Overrides, for evaluating the method at another point (the tests use
        lme4's optimum to check the arithmetic alone).

    Returns
    -------
    SatterthwaiteSetup

    Warns
    -----
    RuntimeWarning
        The Hessian has negative or near-zero eigenvalues (lmerTest's
        "Model failed to converge" warnings): the fit is not at a minimum,
        or a variance parameter sits on the boundary.
    """
    overrides = (pls, REML, varpar, vcov_beta, beta)
    if fit is not None and all(o is None for o in overrides):
        hit = _SETUPS.get(fit)
        if hit is not None:
            return hit
    pls = fit.pls if pls is None else pls
    REML = fit.REML if REML is None else REML
    if varpar is None:  # theta, a residual correlation's parameter (nlme's scale) if any, sigma
        varpar = np.concatenate([fit.opt.theta, [fit.sigma]])
    varpar = np.asarray(varpar, dtype=float)
    funs = VarparFunctions(pls, REML)
    if vcov_beta is None:
        vcov_beta = fit.vcov.to_numpy() if fit is not None else funs.covbeta(varpar)
    if beta is None:
        beta = fit.beta if fit is not None else pls.solve(varpar[:-1]).beta
    H = hessian(funs.deviance, varpar)
    jac = jacobian(funs.covbeta, varpar)
    setup = SatterthwaiteSetup(varpar=varpar, beta=np.asarray(beta, dtype=float), sigma=float(varpar[-1]),
                               vcov_beta=np.asarray(vcov_beta, dtype=float), hessian=H,
                               vcov_varpar=_hessian_inverse(H), jac=jac)
    if fit is not None and all(o is None for o in overrides):
        _SETUPS[fit] = setup
    return setup


_SETUPS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _qform(x: np.ndarray, A: np.ndarray) -> float:
    return float(x @ A @ x)


def satterthwaite_1d(setup: SatterthwaiteSetup, L) -> tuple[float, float, float]:
    """Estimate, variance and Satterthwaite df of one contrast ``L' beta`` (lmerTest's ``contest1D``).

    Returns
    -------
    estimate, var_con, ddf : float
        ``L' beta``, ``L' V_beta L`` and
        ``nu = 2 var_con^2 / (g' A g)`` with ``g_i = L' J_i L``.
    """
    L = np.asarray(L, dtype=float)
    var_con = _qform(L, setup.vcov_beta)
    grad = np.einsum("a,abk,b->k", L, setup.jac, L)
    denom = _qform(grad, setup.vcov_varpar)
    with np.errstate(divide="ignore", invalid="ignore"):  # R's arithmetic: a zero gradient gives inf
        ddf = np.float64(2.0 * var_con ** 2) / np.float64(denom)
    return float(L @ setup.beta), var_con, float(ddf)


def fstat_ddf(nu: np.ndarray, tol: float = 1e-8) -> float:
    """Denominator df of an F statistic from the df of its orthogonal 1-df parts (lmerTest's ``get_Fstat_ddf``).

    With ``E = sum(nu_m / (nu_m - 2))``: ``2 E / (E - q)``; 2 if any
    ``nu_m <= 2``; the common value if all are equal (within ``tol``).
    """
    nu = np.atleast_1d(np.asarray(nu, dtype=float))
    if nu.size == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < tol):
        return float(nu.mean())
    if np.any(nu <= 2):
        return 2.0
    E = np.sum(nu / (nu - 2.0))
    with np.errstate(divide="ignore", invalid="ignore"):  # R's arithmetic: E == q gives inf
        return float(2.0 * E / (E - nu.size))


def satterthwaite_md(setup: SatterthwaiteSetup, L, rhs=0.0, eps: float = np.sqrt(np.finfo(float).eps)):
    """F test of ``L beta = rhs`` with Satterthwaite's denominator df (lmerTest's ``contestMD``).

    ``L V_beta L' = P D P'``; the rows of ``P'L`` over the ``q`` eigenvalues
    above ``eps * d_1`` are independent 1-df contrasts: ``F`` is the mean of
    their squared t statistics and the df combine by :func:`fstat_ddf`.

    Returns
    -------
    F, q, ddf : float, int, float
        (``q = 0`` when ``L`` is empty or has rank 0.)
    """
    L = np.atleast_2d(np.asarray(L, dtype=float))
    rhs = np.broadcast_to(np.asarray(rhs, dtype=float), (L.shape[0],))
    if L.shape[0] == 1:
        est, var, ddf = satterthwaite_1d(setup, L[0])
        return (est - rhs[0]) ** 2 / var, 1, ddf
    beta = setup.beta
    if np.any(rhs != 0):
        beta = beta - np.linalg.pinv(L) @ rhs
    d, P = np.linalg.eigh(L @ setup.vcov_beta @ L.T)
    d, P = d[::-1], P[:, ::-1]
    tol = max(eps * d[0], 0.0)
    q = int(np.sum(d > tol))
    if q == 0:
        return np.nan, 0, np.nan
    PtL = (P.T @ L)[:q]
    if q == 1:  # as lmerTest: the first right-hand side, the unshifted beta
        est, var, ddf = satterthwaite_1d(setup, PtL[0])
        return (est - rhs[0]) ** 2 / var, 1, ddf
    t2 = (PtL @ beta) ** 2 / d[:q]
    grads = np.einsum("ma,abk,mb->mk", PtL, setup.jac, PtL)
    nu = 2.0 * d[:q] ** 2 / np.einsum("mk,kl,ml->m", grads, setup.vcov_varpar, grads)
    return float(t2.sum() / q), q, fstat_ddf(nu)
