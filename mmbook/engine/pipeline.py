"""``lmer`` and its stages: one pipeline for every fit.

A fit is a pipeline of named stages, each callable on its own (lme4's
``lFormula`` -> ``mkLmerDevfun`` -> ``optimizeLmer`` -> ``checkConv`` ->
``mkMerMod``):

==================  ===========================================  ==============================
stage               what it does                                 where
==================  ===========================================  ==============================
formula             lme4's formula language to fixed part and    :mod:`mmbook.engine.formula`
                    random-effects terms
design              model frame: ``y``, ``X``, the terms         :mod:`mmbook.engine.design`
criterion           predictor (PLS factor) + response            :mod:`mmbook.engine.pls`,
                    (profiled REML/ML criterion of ``theta``)    :mod:`mmbook.engine.response`
optimize            minimum of the criterion over ``theta``      :mod:`mmbook.engine.optimize`
check convergence   messages about the optimum (singular fit,    :mod:`mmbook.engine.stages`
                    optimizer's own messages)
fit object          estimates and what follows from them         :mod:`mmbook.engine.fit`
==================  ===========================================  ==============================

:func:`lmer` runs all stages; :func:`mmbook.engine.stages.fit_model` runs
the last four on a model frame, and is what ``refit`` (a new response),
``refit_ml`` (the same model by maximum likelihood) and the bootstrap use,
so every path applies the same checks and reports the same messages.

The model is

.. math::  y = X\\beta + Z\\gamma + e, \\quad \\gamma \\sim N(0, \\psi), \\quad
           e \\sim N(0, \\sigma^2 I), \\quad \\psi = \\sigma^2 \\Lambda_\\theta \\Lambda_\\theta' .
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from .control import LmerControl, blas_threads
from .design import ModelFrame, model_frame
from .fit import LmerFit
from .formula import parse_formula
from .gls import drop_incomplete, rows_used
from .residual import check_nesting, parse_residual, residual_correlation
from .smooth import add_smooths, split_smooths
from .stages import check_control, fit_model
from .update import FitCall

__all__ = ["lmer", "build_model_frame"]


def lmer(formula: str, data: pd.DataFrame, REML: bool = True, control: LmerControl | None = None,
         start: np.ndarray | None = None, residual: str | None = None) -> LmerFit:
    """Fit a linear mixed model, as lme4's ``lmer``.

    Parameters
    ----------
    formula : str
        An lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``.
    data : pandas.DataFrame
    REML : bool, default True
        Estimate by restricted maximum likelihood (True) or maximum likelihood.
    control : LmerControl, optional
    start : array_like, optional
        Starting ``theta``. Default: a moment estimate for random-intercept
        terms (:meth:`mmbook.engine.pls.PLS.moment_start`) and lme4's start
        (1 on the diagonal of ``T``, 0 below it) for the others.
    residual : str, optional
        Correlated residuals within clusters (nlme's ``correlation``):
        ``"ar1(t | g)"`` (``corr = phi^|t_i - t_j|``, nlme's ``corAR1(form =
        ~ t | g)``: gaps in the time covariate count; ``corCAR1`` when the
        times are not whole numbers) or ``"cs(1 | g)"`` (equal correlation
        ``rho``, nlme's ``corCompSymm``). The parameter is estimated with
        ``theta`` (:attr:`LmerFit.phi`, :attr:`LmerFit.rho`). The clusters
        must be nested in the grouping factor of the first random-effects
        term (see :mod:`mmbook.engine.residual`).

    The formula may contain smooth terms ``s(x, k = 10, bs = "cr")`` (mgcv's
    cubic regression spline), fitted as random effects with one variance
    each (see :mod:`mmbook.engine.smooth` and :attr:`LmerFit.smooths`); a
    model of smooths alone (``y ~ s(x)``) needs no other random term.

    Returns
    -------
    LmerFit

    Raises
    ------
    ValueError, TypeError, KeyError
        Bad formula or data (see :func:`mmbook.engine.design.model_frame`).

    Examples
    --------
    >>> import mmbook
    >>> fit = mmbook.lmer("Reaction ~ Days + (Days | Subject)", mmbook.load_sleepstudy())
    >>> round(fit.objective, 4)
    1743.6283
    """
    call = FitCall(lmer, dict(locals()))  # every argument, for update() (lme4's getCall)
    control = check_control(control)
    with blas_threads(control.blas_threads):
        mf = build_model_frame(formula, data, stacklevel=4, residual=residual)  # user -> lmer -> build_model_frame
        fit = fit_model(mf, fit_class=LmerFit, REML=REML, control=control, start=start, data=data,
                        stacklevel=3)
    fit.call = call
    return fit


def build_model_frame(formula: str, data: pd.DataFrame, stacklevel: int = 2, residual=None) -> ModelFrame:
    """Stages *formula* and *design*: an lme4 formula and a data frame to a :class:`ModelFrame`.

    Smooth terms ``s(...)`` become fixed columns and one random-effects term
    each (:func:`mmbook.engine.smooth.add_smooths`); ``residual`` becomes
    the model frame's residual correlation structure.

    Raises
    ------
    ValueError
        The formula has no random-effects term and no smooth (use
        :func:`mmbook.lm`, or :func:`mmbook.gls` for correlated residuals).
    """
    f = parse_formula(formula)
    fixed, smooths = split_smooths(f.fixed)
    if not f.random and not smooths:
        hint = "mmbook.gls" if residual is not None else "mmbook.lm"
        raise ValueError(f"no random-effects terms in {formula!r}: add one such as (1 | group), "
                         f"or use {hint} for a model without random effects")
    spec = parse_residual(residual) if residual is not None else None
    extra = [s.variable for s in smooths] + (spec.variables if spec else [])
    if extra:
        if not isinstance(data, pd.DataFrame):
            data = pd.DataFrame(data)
        data = drop_incomplete(data, extra, "the smooths' covariates and the residual structure",
                               stacklevel=stacklevel + 1)
    mf = model_frame(replace(f, fixed=fixed), data, drop_rank=True, stacklevel=stacklevel + 1)
    if extra:  # the frame keeps the variables of the smooths and of the residual structure too
        rows = rows_used(data, mf)
        mf.frame = mf.frame.assign(**{v: rows[v] for v in extra if v not in mf.frame.columns})
    if smooths:
        mf = add_smooths(mf, smooths, stacklevel=stacklevel + 1)
    mf.formula = f
    if spec is not None:
        mf.residual = residual_correlation(spec, mf.frame)
        check_nesting(mf.residual, mf.terms[0])
    return mf
