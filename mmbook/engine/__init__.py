"""The fitting engine: lme4's pipeline for linear mixed models.

Stages of a fit, one module each (see :mod:`mmbook.engine.pipeline`):
``formula`` -> ``design`` -> ``pls`` (predictor) + ``response`` (criterion),
computed in the well-conditioned parameterisation of ``conditioning`` ->
``optimize`` -> ``stages`` (convergence checks: ``convergence``, lme4's
``checkConv``; refits) -> ``fit`` (the result). lme4's verbs around a fit:
``predict`` (predict, simulate), ``lrt`` (anova), ``intervals`` (confint,
profile), ``bootstrap`` (bootMer), ``allfit`` (allFit); ``report`` prints
lme4's summary. The engine imports neither statsmodels, matplotlib nor the
book's forms.
"""
