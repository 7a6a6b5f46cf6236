"""The fitting engine: lme4's pipeline for linear mixed models.

Stages of a fit, one module each (see :mod:`mmbook.engine.pipeline`):
``formula`` -> ``design`` (built on ``modelmatrix``, with R's functions and
factors in ``rfunctions``, R's names in ``rnames`` and R's ``contrasts``;
``newdata`` rebuilds it for new data) -> ``pls`` (predictor) + ``response``
(criterion), computed in the well-conditioned parameterisation of
``conditioning`` -> ``optimize`` -> ``stages`` (convergence checks:
``convergence``, lme4's ``checkConv``; refits) -> ``fit`` (the result; its
matrices in ``matrices``, lme4's ``getME``). lme4's verbs around a fit:
``predict`` (predict, simulate), ``update`` (update, formula arithmetic),
``lrt`` (anova, drop1), ``profile`` (profile), ``intervals`` (confint),
``bootstrap`` (bootMer), ``allfit`` (allFit), ``tidy`` (broom.mixed's tidy,
glance); ``report`` prints lme4's summary. Generalized linear mixed models
(``glmer``) replace the Gaussian response with a GLM one on the same
predictor: ``glm_family`` (families, links), ``glmm_frame`` (cbind, factors,
weights, offsets), ``glmm_response``, ``pirls`` (PIRLS, Laplace and
quadrature deviances), ``glmm_gradient``, ``glmer`` (the stages),
``glmm_fit``, ``glmm_intervals``, ``glmm_report``. The engine imports
neither statsmodels, matplotlib nor the
book's forms.
"""
