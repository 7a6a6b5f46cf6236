"""The fitting engine: lme4's pipeline for linear mixed models.

Stages of a fit, one module each (see :mod:`mmbook.engine.pipeline`):
``formula`` -> ``design`` -> ``pls`` (predictor) + ``response`` (criterion) ->
``optimize`` -> ``stages`` (convergence checks, refits) -> ``fit`` (the result).
lme4's verbs around a fit: ``predict`` (predict, simulate), ``lrt`` (anova),
``intervals`` (confint, profile), ``bootstrap`` (bootMer); ``report`` prints
lme4's summary. Generalized linear mixed models (``glmer``) replace the
Gaussian response with a GLM one on the same predictor: ``glm_family``
(families, links), ``glmm_frame`` (cbind, factors, weights, offsets),
``glmm_response``, ``pirls`` (PIRLS, Laplace and quadrature deviances),
``glmm_gradient``, ``glmer`` (the stages), ``glmm_fit``, ``glmm_intervals``,
``glmm_report``. The engine imports neither statsmodels, matplotlib nor the
book's forms.
"""
