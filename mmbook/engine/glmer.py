"""``glmer``: generalized linear mixed models for binary and count responses, as lme4 fits them.

The model (Bates et al. 2015; lme4's ``glmer`` vignette) is

.. math::  g(E[y_i \\mid b]) = \\eta_i = x_i'\\beta + z_i'b + o_i, \\qquad
           b = \\Lambda_\\theta u, \\quad u \\sim N(0, I),

with ``y_i | b`` binomial or Poisson (:mod:`mmbook.engine.glm_family`). The
stages are lmer's, with a GLM response in place of the Gaussian one:

==================  ==========================================  ======================================
stage               what it does                                where
==================  ==========================================  ======================================
formula, design     response (``cbind``, factors, proportions)  :mod:`mmbook.engine.glmm_frame`
                    with weights and offsets; ``X``; the terms
criterion           PIRLS on the predictor (:class:`PLS`),      :mod:`mmbook.engine.pirls`,
                    Laplace or quadrature deviance              :mod:`mmbook.engine.glmm_response`
optimize, stage 1   ``theta`` alone, ``beta`` at the joint      :func:`fit_glmm`
                    conditional mode (lme4's nAGQ = 0)
optimize, stage 2   ``theta`` and ``beta`` together             :func:`fit_glmm`
check convergence   singular fit, gradient at the optimum,      :func:`check_glmm`
                    separation
fit object          estimates and what follows from them        :mod:`mmbook.engine.glmm_fit`
==================  ==========================================  ======================================

Both stages use the optimizer of ``lmer`` (:func:`minimize_theta`). In stage
2 the fixed effects are optimised in whitened coordinates,
``beta = beta_1 + R_X^{-T} delta`` with ``R_X`` from stage 1 (so that
``delta`` has about unit variance): lme4 optimises ``beta`` on the scale of
the data and stops early when the columns of ``X`` have very different
scales (its "consider rescaling" warning); the optimum is the same.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import scipy.linalg as sla

from .control import ConvergenceWarning, SingularFitWarning, blas_threads
from .glm_family import as_family
from .glmm_control import GlmerControl, PIRLSError, check_glmer_control
from .glmm_fit import GlmerFit
from .glmm_frame import GLMData, glmm_frame
from .glmm_response import GLMResponse
from .optimize import OptimizeResult, minimize_theta
from .pirls import GLMMCriterion
from .pls import PLS

__all__ = ["glmer", "fit_glmm", "check_glmm"]


def glmer(formula: str, data: pd.DataFrame, family="binomial", nAGQ: int = 1, weights=None, offset=None,
          control: GlmerControl | None = None, start=None) -> GlmerFit:
    """Fit a generalized linear mixed model by maximum likelihood, as lme4's ``glmer``.

    Parameters
    ----------
    formula : str
        An lme4 formula, e.g. ``"cbind(incidence, size - incidence) ~ period + (1 | herd)"``
        or ``"y ~ x + offset(log(t)) + (x | g)"``.
    data : pandas.DataFrame
    family : str or Family
        ``"binomial"`` (logit link), ``"poisson"`` (log link), or
        ``mmbook.binomial(link="probit" | "cloglog")``.
    nAGQ : int, default 1
        1: Laplace approximation; 2 to 25: adaptive Gauss-Hermite quadrature
        with that many nodes (a single scalar random-effects term only); 0:
        stop after stage 1 (``beta`` at the joint conditional mode; lme4's
        fast, approximate ``nAGQ = 0``).
    weights : str or array_like, optional
        Prior weights: a column name or one value per row. For a binomial
        proportion, the numbers of trials.
    offset : str or array_like, optional
        A column name or expression (``"log(t)"``), or one value per row;
        added to the formula's ``offset()`` terms.
    control : GlmerControl, optional
    start : dict or array_like, optional
        ``{"theta": ..., "fixef": ...}`` or the starting ``theta`` alone.

    Returns
    -------
    GlmerFit

    Raises
    ------
    ValueError, TypeError, KeyError
        Bad formula or data, a response outside the family's support, an
        impossible ``nAGQ`` (see :func:`mmbook.engine.glmm_frame.glmm_frame`).
    RuntimeError
        No finite deviance anywhere (PIRLS fails at every ``theta`` tried).

    Examples
    --------
    >>> import mmbook
    >>> fit = mmbook.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                    mmbook.load_cbpp(), family="binomial")
    >>> round(fit.loglik, 4)
    -92.0263
    """
    control = check_glmer_control(control)
    fam = as_family(family)
    nAGQ = _check_nagq(nAGQ)
    with blas_threads(control.blas_threads):
        gd = glmm_frame(formula, data, fam, weights=weights, offset=offset, stacklevel=4)
        return fit_glmm(gd, nAGQ=nAGQ, control=control, start=start, data=data, family=fam, stacklevel=3)


def _check_nagq(nAGQ) -> int:
    if isinstance(nAGQ, bool) or not isinstance(nAGQ, (int, np.integer)) or not 0 <= nAGQ <= 25:
        raise ValueError(f"nAGQ must be a whole number from 0 to 25 (lme4's limit), got {nAGQ!r}")
    return int(nAGQ)


def _start(start, crit: GLMMCriterion):
    theta0, beta0 = crit.theta0.copy(), None
    if start is None:
        return theta0, beta0
    if isinstance(start, dict):
        bad = set(start) - {"theta", "fixef"}
        if bad:
            raise ValueError(f"start may have the keys 'theta' and 'fixef', not {', '.join(map(repr, bad))}")
        if start.get("theta") is not None:
            theta0 = np.asarray(start["theta"], dtype=float).reshape(-1)
        if start.get("fixef") is not None:
            beta0 = np.asarray(start["fixef"], dtype=float).reshape(-1)
            if beta0.shape != (crit.p,):
                raise ValueError(f"start['fixef'] must have {crit.p} values, got {beta0.size}")
    else:
        theta0 = np.asarray(start, dtype=float).reshape(-1)
    if theta0.shape != crit.theta0.shape:
        raise ValueError(f"start must have {len(crit.theta0)} values of theta, got {theta0.size}")
    if np.any(theta0 < crit.lower):
        raise ValueError("start: the diagonal elements of theta must be >= 0")
    return theta0, beta0


def _minimize(f, x0, lower, control, polish=True, fgrad=None, start_only=False):
    """lmer's optimizer; with an exact gradient, L-BFGS-B alone to tight tolerances (no Newton polish).

    ``start_only``: the optimum only starts the next stage, so looser tolerances do.
    """
    if fgrad is not None:
        tol = dict(ftol=1e-10, gtol=1e-4) if start_only else dict(ftol=1e-15, gtol=1e-7)
        return minimize_theta(f, x0, lower, polish=False, fgrad=fgrad, **tol)
    return minimize_theta(f, x0, lower, grad_step=control.grad_step, ftol=control.ftol, gtol=control.gtol,
                          polish=polish and control.polish, central=control.central)


def fit_glmm(gd: GLMData, *, nAGQ: int, control: GlmerControl, family, start=None, data=None,
             warn: bool = True, stacklevel: int = 2) -> GlmerFit:
    """Stages *criterion* to *fit object* on a GLMM's data (lme4's ``glmer`` after ``glFormula``).

    Stage 1 minimises the Laplace deviance over ``theta`` with ``beta`` at
    the joint conditional mode; stage 2 (``nAGQ >= 1``) minimises the
    Laplace or quadrature deviance over ``theta`` and ``beta``, from stage
    1's estimates. Parameters as :func:`glmer`; ``warn=False`` records the
    convergence messages in ``fit.messages`` without issuing them.
    """
    response = GLMResponse(family, gd.y, gd.weights, gd.trials, gd.offset)
    crit = GLMMCriterion(gd.mf, response, control, nAGQ)
    theta0, beta0 = _start(start, crit)

    # ---- stage 1: theta, with beta at the joint conditional mode
    if control.nAGQ0_init_step or nAGQ == 0:
        # stage 1 only gives stage 2 its start (unless nAGQ = 0): no Newton polish
        opt1 = _minimize(crit.objective_theta, theta0, crit.lower, control, polish=nAGQ == 0,
                         fgrad=crit.objective_theta_and_gradient if crit.has_gradient else None,
                         start_only=nAGQ > 0)
        if not np.isfinite(opt1.fun):
            raise RuntimeError("PIRLS found no conditional modes at any theta tried: the model cannot be "
                               "fitted to these data (complete separation of the responses by the fixed "
                               f"effects, or an impossible design?). Last failure: {crit.last_error}")
        theta1 = opt1.theta
    else:
        opt1, theta1 = None, theta0
    try:
        state1 = crit.pirls(theta1)
    except PIRLSError as exc:
        raise RuntimeError(f"the model cannot be fitted: {exc}") from None

    if nAGQ == 0:
        state, params, value = state1, theta1.copy(), crit.laplace(state1)
        opt_messages, nfev = list(opt1.messages), opt1.nfev
    else:
        # ---- stage 2: theta and beta, beta in whitened coordinates around stage 1's
        beta1 = state1.beta if beta0 is None else beta0
        M = _whitening(crit, state1)
        nth = crit.ntheta

        def to_params(x):
            return np.concatenate([x[:nth], beta1 + M @ x[nth:]])

        def g(x):
            return crit.objective(to_params(x))

        def fg(x):
            f, grad = crit.objective_and_gradient(to_params(x))
            return f, (None if grad is None else np.concatenate([grad[:nth], M.T @ grad[nth:]]))

        lower = np.concatenate([crit.lower, np.full(crit.p, -np.inf)])
        opt2 = _minimize(g, np.concatenate([theta1, np.zeros(crit.p)]), lower, control,
                         fgrad=fg if crit.has_gradient else None)
        x = _snap_to_boundary(g, opt2.theta, opt2.fun, crit.lower, control.boundary_tol)
        if not np.isfinite(g(x)):
            raise RuntimeError(f"PIRLS failed at the optimum found: {crit.last_error}")
        params = to_params(x)
        state = crit.pirls(params[:nth], params[nth:])
        value = crit.value(state)
        opt_messages = list(opt2.messages)
        nfev = opt2.nfev + (opt1.nfev if opt1 is not None else 0)

    theta = params[:crit.ntheta]
    opt = OptimizeResult(theta=theta.copy(), fun=float(value), nfev=nfev, converged=not opt_messages,
                         messages=opt_messages)
    pls = PLS(replace(gd.mf, X=np.zeros((gd.mf.n, 0)), xnames=[]), REML=False)
    pls.reweight(state.sqrtw, crit.working_response(state, beta_given=True))  # at the mode: condvar
    fit = GlmerFit(mf=gd.mf, pls=pls, opt=opt, control=control, data=data, response=response, family=family,
                   nAGQ=nAGQ, criterion=crit, state=state, glm_data=gd, stage1=opt1,
                   params=np.concatenate([theta, state.beta]))
    fit.messages = check_glmm(fit)
    if warn:
        for category, text in fit.messages:
            warnings.warn(text, category, stacklevel=stacklevel + 1)
    return fit


def _whitening(crit: GLMMCriterion, state) -> np.ndarray:
    """``R_X^{-T}`` at a mode: ``beta = beta_1 + R_X^{-T} delta`` gives ``delta`` about unit variance."""
    if crit.p == 0:
        return np.zeros((0, 0))
    RX = crit.RX(state)
    try:
        M = sla.solve_triangular(RX, np.eye(crit.p), lower=True, trans="T")
    except (np.linalg.LinAlgError, ValueError):
        M = np.eye(crit.p)
    if not np.all(np.isfinite(M)):
        M = np.eye(crit.p)
    return M


def _snap_to_boundary(f, x, fx, lower_theta, tol):
    """lme4's ``check.boundary``: a variance parameter within ``tol`` of zero is tried at zero."""
    x = np.array(x, dtype=float)
    k = len(lower_theta)
    near = np.flatnonzero((lower_theta == 0) & (x[:k] > 0) & (x[:k] < tol))
    for i in near:
        trial = x.copy()
        trial[i] = 0.0
        ft = f(trial)
        if ft <= fx:
            x, fx = trial, ft
    return x


def check_glmm(fit: GlmerFit) -> list[tuple[type, str]]:
    """Stage *check convergence* of a GLMM: ``(warning class, text)`` pairs.

    The optimizer's messages; a gradient check at the optimum (lme4's
    ``check.conv.grad``: a component of the gradient, scaled by the Hessian,
    above ``control.grad_tol``); lme4's singular-fit message; and a
    separation warning when fitted probabilities are numerically 0 or 1
    (R's ``glm``).
    """
    out = [(ConvergenceWarning, m) for m in fit.opt.messages]
    ctl = fit.control
    if fit.nAGQ > 0:
        grad = fit.gradient()
        free = ~((np.concatenate([fit.pls.lower, np.full(fit.mf.p, -np.inf)]) == 0) & (fit.params == 0))
        g = np.where(free, grad, 0.0)
        if np.max(np.abs(g), initial=0.0) > ctl.grad_tol:
            try:
                H = fit.hessian()
                scaled = np.linalg.solve(np.linalg.cholesky(H), g)
                g = np.minimum(np.abs(scaled), np.abs(g))
            except np.linalg.LinAlgError:
                pass
            if np.max(np.abs(g)) > ctl.grad_tol:
                j = int(np.argmax(np.abs(g)))
                out.append((ConvergenceWarning, f"Model failed to converge with max|grad| = {np.max(np.abs(g)):.6g} "
                                                f"(tol = {ctl.grad_tol:g}, component {j + 1})"))
    if ctl.check_singular and fit.is_singular:
        out.append((SingularFitWarning, "boundary (singular) fit: see fit.is_singular and fit.varcorr "
                                        "(a variance or a correlation is at the edge of its range)"))
    if fit.family.name == "binomial":
        mu = fit.state.mu
        if np.any((mu <= 10 * np.finfo(float).eps) | (mu >= 1 - 10 * np.finfo(float).eps)):
            out.append((UserWarning, "fitted probabilities numerically 0 or 1 occurred: the responses are "
                                     "(quasi-)completely separated, and some estimates may be infinite"))
    return out
