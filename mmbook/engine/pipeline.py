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

import numpy as np
import pandas as pd

from .control import LmerControl, blas_threads
from .design import ModelFrame, model_frame
from .fit import LmerFit
from .formula import parse_formula
from .stages import check_control, fit_model

__all__ = ["lmer", "build_model_frame"]


def lmer(formula: str, data: pd.DataFrame, REML: bool = True, control: LmerControl | None = None,
         start: np.ndarray | None = None) -> LmerFit:
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
    control = check_control(control)
    with blas_threads(control.blas_threads):
        mf = build_model_frame(formula, data, stacklevel=4, control=control)  # user -> lmer -> build_model_frame
        return fit_model(mf, fit_class=LmerFit, REML=REML, control=control, start=start, data=data,
                         stacklevel=3)


def build_model_frame(formula: str, data: pd.DataFrame, stacklevel: int = 2,
                      control: LmerControl | None = None) -> ModelFrame:
    """Stages *formula* and *design*: an lme4 formula and a data frame to a :class:`ModelFrame`.

    ``control`` supplies the design's checks (``check_nobs_vs_nRE``).

    Raises
    ------
    ValueError
        The formula has no random-effects term (use :func:`mmbook.lm`).
    """
    f = parse_formula(formula)
    if not f.random:
        raise ValueError(f"no random-effects terms in {formula!r}: add one such as (1 | group), "
                         "or use mmbook.lm for a model without random effects")
    control = check_control(control)
    return model_frame(f, data, drop_rank=True, stacklevel=stacklevel + 1,
                       check_nobs_vs_nRE=control.check_nobs_vs_nRE)
