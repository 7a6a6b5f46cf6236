"""The forms of the linear mixed model that the book writes out, each computed explicitly.

``pooling`` (form 2: complete, no and partial pooling), ``icc`` and
``marginal`` (forms 4 and 5: the intraclass correlation, conditional and
marginal densities, GLS), ``mme`` (form 6: Henderson's equations, ridge),
``panel`` (within, hybrid and Mundlak estimators), ``bayes`` (form 7: a
Gibbs sampler). They use the engine; the engine never uses them.
"""
