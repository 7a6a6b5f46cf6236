"""The stages of a fit after the design: criterion, optimize, check convergence, fit object.

:func:`fit_model` runs them on a model frame; :func:`refit` (a new
response), :func:`refit_ml` (the same model by maximum likelihood) and the
bootstrap call it too, so every path applies the same checks and reports the
same messages. The class of the result is passed in (``fit_class``) or taken
from the fit being refitted, so this module does not depend on the fit
object's methods (which use it).
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd

from .conditioning import ConditionedPLS
from .control import (ConvergenceError, ConvergenceWarning, LmerControl, PredictorScaleWarning, SingularFitWarning,
                      blas_threads)
from .convergence import check_conv
from .design import ModelFrame
from .optimize import minimize_theta

__all__ = ["fit_model", "check_fit", "refit", "refit_ml", "check_control"]


def check_control(control) -> LmerControl:
    """``control`` as an :class:`LmerControl` (None: the defaults).

    Raises
    ------
    TypeError
        ``control`` is not an LmerControl.
    """
    if control is None:
        return LmerControl()
    if not isinstance(control, LmerControl):
        raise TypeError(f"control must be an mmbook.LmerControl, got {type(control).__name__}")
    return control


def fit_model(mf: ModelFrame, *, fit_class, REML: bool = True, control: LmerControl | None = None, start=None,
              data: pd.DataFrame | None = None, warn: bool = True, stacklevel: int = 2, pls=None):
    """Stages *criterion* to *fit object* on a model frame.

    Parameters
    ----------
    mf : ModelFrame
    fit_class : type
        The class of the result (:class:`mmbook.engine.fit.LmerFit`).
    REML : bool
    control : LmerControl, optional
    start : array_like, optional
        Starting ``theta`` (default: :meth:`PLS.moment_start`).
    data : DataFrame, optional
        The user's data, kept on the fit.
    warn : bool
        Issue the convergence and singular-fit messages as warnings. They
        are always recorded in ``fit.messages`` (the bootstrap collects them
        instead of warning once per refit).
    stacklevel : int
        Where warnings point: 2 is the caller of ``fit_model``.
    pls : optional
        The predictor, if already built (from summed cross-products:
        :class:`mmbook.engine.bigdata.SummedPLS`); default
        ``ConditionedPLS(mf, REML, control.condition)``.

    Returns
    -------
    LmerFit
    """
    control = check_control(control)
    if pls is None:
        pls = ConditionedPLS(mf, REML=REML, condition=control.condition)
    if start is None:
        par0 = pls.start_par()
    else:
        theta0 = np.asarray(start, dtype=float).ravel()
        if mf.residual is not None and theta0.size == pls.theta0.size - 1:
            theta0 = np.append(theta0, pls.theta0[-1])  # lme4's theta: the correlation parameter starts at 0
        if theta0.shape != pls.theta0.shape:
            raise ValueError(f"start must have {len(pls.theta0)} values (theta), got {theta0.size}")
        if not np.all(np.isfinite(theta0)):
            raise ValueError("start has missing or infinite values")
        par0 = pls.par_of(theta0)
    starts = [("lme4's start (T = I)", pls.theta0)]
    if start is not None:
        starts.append(("the moment start", pls.start_par()))
    opt_args = dict(optimizer=control.optimizer, maxfun=control.maxfun, grad_step=control.grad_step,
                    ftol=control.ftol, gtol=control.gtol, polish=control.polish, central=control.central,
                    boundary_tol=control.singular_tol, fgrad=_exact_gradient(pls),
                    newton_max_params=_NEWTON_MAX_PARAMS if start is None and _moment_started(mf) else 0)
    opt = minimize_theta(pls.objective_par, par0, pls.lower, starts=starts, **opt_args)
    if mf.residual is not None and start is None:
        # a correlation parameter and the variances can trade off: local minima at a small and a
        # large correlation are common (sleepstudy with random slopes), so start from several values
        for eta in mf.residual.start_values:
            if eta == par0[-1]:
                continue
            other = minimize_theta(pls.objective_par, np.append(par0[:-1], eta), pls.lower, **opt_args)
            if other.fun < opt.fun:
                other.nfev += opt.nfev
                opt = other
    if not np.isfinite(opt.fun):
        if mf.n and np.all(mf.y == mf.y[0]):
            raise ValueError(f"the response is constant ({mf.y[0]:g}): the residual variance is zero and the "
                             "criterion is not defined (lme4 returns a meaningless fit here)")
        raise ValueError("the criterion is not finite anywhere the optimizer looked: the model cannot be "
                         "fitted to these data (is a column of X or Z all zero, or are X and Z collinear?)")
    opt.par = opt.theta
    opt.theta = pls.theta_of(opt.par)
    opt.fun = opt.fun + pls.offset
    fit = fit_class(mf=mf, pls=pls, opt=opt, control=control, data=data)
    messages = check_fit(fit)
    fit.messages = messages
    if warn:
        for category, text in messages:
            warnings.warn(text, category, stacklevel=stacklevel + 1)
    return fit


# Newton's method first (mmbook.engine.optimize._newton) from the moment start of up to this many
# random intercepts: each step costs a Hessian's worth of evaluations, so it pays for few parameters
_NEWTON_MAX_PARAMS = 2


def _moment_started(mf) -> bool:
    """Whether the start is :meth:`PLS.moment_start`'s estimate of every parameter (random intercepts
    only, independent residuals): near the optimum, where Newton's method converges at once."""
    return mf.residual is None and all(t.ntheta == 1 and t.q == 1 for t in mf.terms)


def scale_message(X: np.ndarray, tol: float = 1000.0) -> str | None:
    """lme4's ``checkScaleX``: the message when the columns of ``X`` are on very different scales.

    The standard deviations of the columns that are not 0/1 indicators are
    compared with each other and with 1: any ratio beyond ``tol`` gives
    "Some predictor variables are on very different scales". mmbook adds
    that the fit is not affected (it optimises in a rescaled
    parameterisation).
    """
    n = X.shape[0]
    if X.shape[1] == 0 or n < 2:
        return None
    # 0/1 columns (dummies) are left out: a cheap look at a few rows, then a full pass on candidates
    look = X[np.linspace(0, n - 1, min(n, 16)).astype(int)]
    binary = np.all((look == 0) | (look == 1), axis=0)
    cand = np.flatnonzero(binary)
    step = max(8192, (1 << 18) // max(len(cand), 1))  # blocks of rows: a pass over X, small temporaries
    for start in range(0, n if len(cand) else 0, step):
        block = X[start:start + step]
        if len(cand) < X.shape[1]:
            block = block[:, cand]
        ok = np.all((block == 0) | (block == 1), axis=0)
        if not ok.all():
            binary[cand[~ok]] = False
            cand = cand[ok]
            if not len(cand):
                break
    if binary.all():
        return None
    # R's sd, one column at a time (a temporary of one column, not of all of them)
    sd = np.array([np.std(X[:, j], ddof=1) for j in np.flatnonzero(~binary)])
    sd = sd[sd > 0]
    if not sd.size:
        return None
    logsd = np.abs(np.log(sd))
    spread = np.log(sd.max()) - np.log(sd.min())
    if max(spread, logsd.max()) > np.log(tol):
        return ("Some predictor variables are on very different scales: consider rescaling "
                "(information only: mmbook fits in centred and scaled columns, so the estimates are not affected)")
    return None


def _exact_gradient(pls):
    """The criterion with its analytic gradient in the optimizer's parameters, where that pays
    (:meth:`mmbook.engine.pls.PLS.analytic_gradient_pays`), else None (finite differences).

    ``objective_par`` is the conditioned model's own criterion (:class:`ConditionedPLS`), so its
    gradient is that model's :meth:`~mmbook.engine.pls.PLS.objective_gradient`.
    """
    inner = pls.inner
    if not inner.analytic_gradient_pays():
        return None

    def fgrad(par):
        par = np.asarray(par, dtype=float)
        if not np.all(np.isfinite(par)):
            return np.inf, np.zeros_like(par)
        with np.errstate(all="ignore"):
            f, g = inner.objective_gradient(par)
        return (f, g) if np.isfinite(f) else (np.inf, np.zeros_like(par))

    return fgrad


def check_fit(fit) -> list[tuple[type, str]]:
    """Stage *check convergence*: the messages a fit carries, as ``(warning class, text)`` pairs.

    In order: lme4's scale message (:func:`scale_message`, information
    only); the optimizer's own messages (an abnormal end that no restart
    repaired); lme4's ``checkConv`` (:func:`mmbook.engine.convergence.check_conv`,
    whose figures are stored as ``fit.convergence``); the singular-fit
    message. A failed check sets ``fit.opt.converged = False``.

    Raises
    ------
    ConvergenceError
        A check whose action is ``"stop"`` failed.
    """
    c = fit.control
    out = []
    if c.check_scaleX != "ignore":
        msg = scale_message(fit.mf.X)
        if msg is not None:
            if c.check_scaleX == "stop":
                raise ValueError(msg.split(" (")[0])
            out.append((PredictorScaleWarning, msg))
    opt = fit.opt
    conv_msgs = list(opt.messages)
    pls = fit.pls
    conv = check_conv(pls.objective_par, opt.par, pls.lower, fun=opt.fun - pls.offset, derivs=opt.derivs,
                      singular_tol=c.singular_tol, grad_tol=c.check_conv_grad_tol, hess_tol=c.check_conv_hess_tol,
                      check_grad=c.check_conv_grad != "ignore", check_hess=c.check_conv_hess != "ignore",
                      max_params=c.max_hessian_params)
    fit.convergence = conv
    if conv.code < 0:
        opt.converged = False
    for m in conv.messages:
        hess = not (m.startswith("Model failed to converge with") or m.startswith("unable to evaluate")
                    or m.startswith("Gradient"))
        action = c.check_conv_hess if hess else c.check_conv_grad
        if action == "stop":
            raise ConvergenceError(m)
        conv_msgs.append(m)
    opt.messages = list(dict.fromkeys(conv_msgs))
    out += [(ConvergenceWarning, m) for m in conv_msgs]
    if c.check_singular and fit.is_singular:
        out.append((SingularFitWarning,
                    "boundary (singular) fit: see fit.is_singular and fit.varcorr "
                    "(a variance or a correlation is at the edge of its range)"))
    return out


def refit(fit, y, REML: bool | None = None, warn: bool = True):
    """The same model fitted to a new response ``y`` (lme4's ``refit``).

    The design (``X`` and the random-effects terms) is reused and the
    optimizer starts from the fit's ``theta``; the model frame gets the new
    response, so everything computed from the refit (including a
    cross-check) sees the new data.

    Raises
    ------
    ValueError
        ``y`` has the wrong length or non-finite values.
    """
    if getattr(fit, "family", None) is not None:  # a GlmerFit: its response is not Gaussian
        raise NotImplementedError("refit (and the parametric bootstrap) of a GLMM is not available; "
                                  "fit the new response with mmbook.glmer")
    y = np.asarray(y, dtype=float)
    if y.shape != (fit.nobs,):
        raise ValueError(f"y must have {fit.nobs} values, got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("y has missing or infinite values")
    frame = fit.mf.frame.copy()
    response = fit.mf.formula.response
    data = fit.data
    if response in frame.columns:
        frame[response] = y
        if data is not None and response in data.columns:
            data = data.copy()
            data[response] = data[response].astype(float)  # a logical response holds 0/1, the new y any number
            data.loc[frame.index, response] = y
    else:  # a transformed response, e.g. log(y): the frame keeps the variables; keep y alongside
        data = None
    mf = replace(fit.mf, y=y, frame=frame)
    with blas_threads(fit.control.blas_threads):
        return fit_model(mf, fit_class=type(fit), REML=fit.REML if REML is None else REML, control=fit.control,
                         start=fit.opt.theta, data=data, warn=warn, stacklevel=3)


def refit_ml(fit, warn: bool = True):
    """The same model fitted by maximum likelihood (lme4's ``refitML``); an ML fit is returned as is."""
    if not fit.REML:
        return fit
    with blas_threads(fit.control.blas_threads):
        return fit_model(fit.mf, fit_class=type(fit), REML=False, control=fit.control, start=fit.opt.theta, data=fit.data,
                         warn=warn, stacklevel=3)
