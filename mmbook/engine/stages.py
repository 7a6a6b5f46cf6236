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

from .control import LmerControl, SingularFitWarning, blas_threads
from .design import ModelFrame
from .optimize import minimize_theta
from .pls import PLS

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
              data: pd.DataFrame | None = None, warn: bool = True, stacklevel: int = 2):
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

    Returns
    -------
    LmerFit
    """
    control = check_control(control)
    pls = PLS(mf, REML=REML)
    theta0 = pls.moment_start() if start is None else np.asarray(start, dtype=float)
    if start is not None and getattr(pls, "residual", None) is not None and theta0.size == pls.theta0.size - 1:
        theta0 = np.append(theta0, pls.theta0[-1])  # lme4's theta: the correlation parameter starts at 0
    if theta0.shape != pls.theta0.shape:
        raise ValueError(f"start must have {len(pls.theta0)} values (theta), got {theta0.size}")
    opt = minimize_theta(pls.objective, theta0, pls.lower, grad_step=control.grad_step,
                         ftol=control.ftol, gtol=control.gtol, polish=control.polish, central=control.central)
    if getattr(pls, "residual", None) is not None and start is None:
        # a correlation parameter and the variances can trade off: local minima at a small and a
        # large correlation are common (sleepstudy with random slopes), so start from several values
        for eta in pls.residual.start_values:
            if eta == theta0[-1]:
                continue
            other = minimize_theta(pls.objective, np.append(theta0[:-1], eta), pls.lower, grad_step=control.grad_step,
                                   ftol=control.ftol, gtol=control.gtol, polish=control.polish, central=control.central)
            if other.fun < opt.fun:
                other.nfev += opt.nfev
                opt = other
    if not np.isfinite(opt.fun):
        raise RuntimeError("the optimizer found no finite value of the criterion: the model cannot be "
                           "fitted to these data (check for constant or collinear columns)")
    fit = fit_class(mf=mf, pls=pls, opt=opt, control=control, data=data)
    messages = check_fit(fit)
    fit.messages = messages
    if warn:
        for category, text in messages:
            warnings.warn(text, category, stacklevel=stacklevel + 1)
    return fit


def check_fit(fit) -> list[tuple[type, str]]:
    """Stage *check convergence*: the messages a fit carries, as ``(warning class, text)`` pairs.

    The optimizer's own messages, then lme4's singular-fit message when
    ``control.check_singular`` is set.
    """
    out = [(RuntimeWarning, m) for m in fit.opt.messages]
    if fit.control.check_singular and fit.is_singular:
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
