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
optimize            minimum of the criterion over ``theta``, in  :mod:`mmbook.engine.optimize`,
                    a well-conditioned parameterisation          :mod:`mmbook.engine.conditioning`
check convergence   lme4's checkConv (gradient, Hessian),        :mod:`mmbook.engine.stages`,
                    singular fit, the optimizer's own messages   :mod:`mmbook.engine.convergence`
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

from .bigdata import is_dask_dataframe, lmer_dask
from .control import LmerControl, blas_threads
from .design import ModelFrame, model_frame
from .fit import LmerFit
from .formula import parse_formula
from .residual import check_nesting, parse_residual, residual_correlation
from .smooth import add_smooths, split_smooths
from .stages import check_control, fit_model
from .update import FitCall

__all__ = ["lmer", "build_model_frame"]


def lmer(formula: str, data: pd.DataFrame, REML: bool = True, control: LmerControl | None = None,
         start: np.ndarray | None = None, weights=None, offset=None, contrasts: dict | None = None,
         na_action: str = "omit", residual: str | None = None) -> LmerFit:
    """Fit a linear mixed model, as lme4's ``lmer``.

    Parameters
    ----------
    formula : str
        An lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``.
    data : pandas.DataFrame or dask.dataframe.DataFrame
        A Dask DataFrame is fitted without bringing its rows into memory: the
        cross-products are summed partition by partition
        (:mod:`mmbook.engine.bigdata`; Gaussian models with single-column
        grouping factors).
    REML : bool, default True
        Estimate by restricted maximum likelihood (True) or maximum likelihood.
    control : LmerControl, optional
    start : array_like, optional
        Starting ``theta``. Default: a moment estimate for random-intercept
        terms (:meth:`mmbook.engine.pls.PLS.moment_start`) and lme4's start
        (1 on the diagonal of ``T``, 0 below it) for the others.
    weights : str or array_like, optional
        Prior weights ``w_i`` (a column name or expression, or one number per
        row of ``data``): observation ``i`` has residual variance
        ``sigma^2 / w_i``. They enter the criterion as lme4's do
        (``- sum(log w_i)``); a weight of 0 removes the observation's
        influence (the fit equals the fit without it; lme4 1.1-31 returns an
        infinite criterion instead), a negative weight is an error.
    offset : str or array_like, optional
        A known part of the linear predictor (a column name or expression,
        or one number per row), added to the formula's ``offset(x)`` terms;
        fitted values and predictions include it.
    contrasts : dict, optional
        Coding of factors in the fixed part, e.g. ``{"f": "contr.sum"}``,
        ``{"f": mmbook.contr.treatment(base="b")}`` or a coding matrix;
        coefficients get R's names (``f1``, ``f2`` for ``contr.sum``). Ordered
        factors default to ``contr.poly`` (``f.L``, ``f.Q``), as in R.
    na_action : {"omit", "exclude"}
        Rows with missing values are removed (with a warning); with
        ``"exclude"`` (R's ``na.exclude``) fitted values, residuals and
        ``predict()`` are padded with NaN at those rows, indexed like ``data``.
    residual : str, optional
        Correlated residuals within clusters (nlme's ``correlation``):
        ``"ar1(t | g)"`` (``corr = phi^|t_i - t_j|``, nlme's ``corAR1(form =
        ~ t | g)``: gaps in the time covariate count; ``corCAR1`` when the
        times are not whole numbers) or ``"cs(1 | g)"`` (equal correlation
        ``rho``, nlme's ``corCompSymm``). The parameter is estimated with
        ``theta`` (:attr:`LmerFit.phi`, :attr:`LmerFit.rho`). The clusters
        must be nested in the grouping factor of the first random-effects
        term (see :mod:`mmbook.engine.residual`). Not with ``weights``.

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
    if is_dask_dataframe(data):
        if weights is not None or offset is not None or contrasts is not None or na_action != "omit":
            raise NotImplementedError("lmer on a Dask DataFrame takes no weights, offset, contrasts or "
                                      "na_action (the defaults: unit weights, R's contrasts, na.omit)")
        with blas_threads(control.blas_threads):
            fit = lmer_dask(formula, data, REML=REML, control=control, start=start)
        fit.call = call
        return fit
    with blas_threads(control.blas_threads):
        mf = build_model_frame(formula, data, stacklevel=4, control=control, weights=weights, offset=offset,
                               contrasts=contrasts, na_action=na_action,
                               residual=residual)  # user -> lmer -> build_model_frame
        fit = fit_model(mf, fit_class=LmerFit, REML=REML, control=control, start=start, data=data,
                        stacklevel=3)
    fit.call = call
    return fit


def build_model_frame(formula: str, data: pd.DataFrame, stacklevel: int = 2,
                      control: LmerControl | None = None, residual=None, **frame_args) -> ModelFrame:
    """Stages *formula* and *design*: an lme4 formula and a data frame to a :class:`ModelFrame`.

    ``frame_args`` (``weights``, ``offset``, ``contrasts``, ``na_action``)
    go to :func:`mmbook.engine.design.model_frame`; ``control`` supplies the
    design's checks (``check_nobs_vs_nRE``). Smooth terms ``s(...)`` become
    fixed columns and one random-effects term each
    (:func:`mmbook.engine.smooth.add_smooths`); ``residual`` becomes the
    model frame's residual correlation structure
    (:func:`mmbook.engine.residual.residual_correlation`).

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
    control = check_control(control)
    spec = parse_residual(residual) if residual is not None else None
    if spec is not None and frame_args.get("weights") is not None:
        raise NotImplementedError("prior weights together with correlated residuals are not supported")
    extra = [s.variable for s in smooths] + (spec.variables if spec else [])
    mf = model_frame(replace(f, fixed=fixed), data, drop_rank=True, stacklevel=stacklevel + 1,
                     check_nobs_vs_nRE=control.check_nobs_vs_nRE, extra_variables=extra, **frame_args)
    if smooths:
        mf = add_smooths(mf, smooths, stacklevel=stacklevel + 1)
    mf.formula = f
    if spec is not None:
        mf.residual = residual_correlation(spec, mf.frame)
        check_nesting(mf.residual, mf.terms[0])
    return mf
