"""R compatibility for the book: R's random numbers, ``lm``'s summary, the document's simulations.

``rng`` reproduces ``set.seed``/``runif``/``rnorm``/``MASS::mvrnorm`` bit for
bit; ``lm`` is ordinary least squares printed as ``summary.lm``;
``simulation`` regenerates the reference document's two data sets.
"""
