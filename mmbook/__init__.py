"""mmbook: linear mixed models, written seven ways.

The package behind the book *Thinking about mixed models*:

* :mod:`mmbook.engine` - lme4's pipeline: formula, design, the penalized
  least squares criterion, the optimizer, the fit object and lme4's verbs
  around it (predict, simulate, update, anova, drop1, confint, profile,
  bootstrap, tidy, glance, getME);
* :mod:`mmbook.forms` - the forms of the model that the book writes out
  (pooling, ICC, the marginal model, Henderson's equations, panel
  estimators, the Bayesian sampler);
* :mod:`mmbook.inference` - small-sample inference outside the engine, as
  lmerTest, pbkrtest, emmeans and performance do it (Satterthwaite and
  Kenward-Roger df, F tests, marginal means, R²);
* :mod:`mmbook.rcompat` - R compatibility for the book's simulations and
  ``lm`` (R's random numbers, ``summary.lm``);
* :mod:`mmbook.rprint` - R's printing rules, used by every summary;
* :mod:`mmbook.crosscheck`, :mod:`mmbook.plots`, :mod:`mmbook.data` - the
  statsmodels cross-check, figures, data;
* :mod:`mmbook.datasets` - the classic mixed-model data sets, as R has them;
* :mod:`mmbook.reference` - R's results the chapters print beside mmbook's;
* :mod:`mmbook.validation` - lme4's stored results for the book's models and
  lme4's standard ones, and mmbook validated against them; :mod:`mmbook.cli`
  - the ``mmbook`` command line.

Public entry points are imported lazily, so ``import mmbook`` stays cheap and
the core never imports statsmodels or matplotlib.
"""

from importlib import import_module

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "load_sleepstudy": "mmbook.data",
    "lm": "mmbook.rcompat.lm",
    "lmer": "mmbook.engine.pipeline",
    "gls": "mmbook.engine.gls",
    "GlsFit": "mmbook.engine.gls",
    "LmerFit": "mmbook.engine.fit",
    "LmerControl": "mmbook.engine.control",
    "contr": "mmbook.engine.contrasts",
    "all_fit": "mmbook.engine.allfit",
    "anova": "mmbook.engine.lrt",
    "drop1": "mmbook.engine.lrt",
    "confint": "mmbook.engine.intervals",
    "profile": "mmbook.engine.profile",
    "Profile": "mmbook.engine.profile",
    "bootstrap": "mmbook.engine.bootstrap",
    "predict": "mmbook.engine.predict",
    "simulate": "mmbook.engine.predict",
    "update": "mmbook.engine.update",
    "tidy": "mmbook.engine.tidy",
    "glance": "mmbook.engine.tidy",
    "getME": "mmbook.engine.matrices",
    "deviance": "mmbook.engine.fit",
    "refit": "mmbook.engine.stages",
    "refit_ml": "mmbook.engine.stages",
    "crosscheck": "mmbook.crosscheck",
    "CrossCheck": "mmbook.crosscheck",
    "RRandom": "mmbook.rcompat.rng",
    "gibbs_lmm": "mmbook.forms.bayes",
    "coef_table": "mmbook.inference.ftests",
    "anova_table": "mmbook.inference.ftests",
    "contest": "mmbook.inference.ftests",
    "emmeans": "mmbook.inference.emmeans",
    "r2": "mmbook.inference.r2",
    "icc": "mmbook.inference.r2",
    "glmer": "mmbook.engine.glmer",
    "GlmerFit": "mmbook.engine.glmm_fit",
    "GlmerControl": "mmbook.engine.glmm_control",
    "binomial": "mmbook.engine.glm_family",
    "poisson": "mmbook.engine.glm_family",
    "load_cbpp": "mmbook.data",
}

# subpackages available as attributes (``mmbook.datasets.load(...)``), imported on first use
_SUBPACKAGES = ("datasets", "validation", "reference")

__all__ = sorted(_EXPORTS) + list(_SUBPACKAGES) + ["__version__"]

# Functions that share their module's name are bound eagerly: importing the
# submodule (``from mmbook.lm import LmFit``) would otherwise leave the package
# attribute pointing at the module instead of the function.
from .rcompat.lm import lm  # noqa: E402
from .crosscheck import crosscheck  # noqa: E402  (statsmodels is imported only when it runs)


def __getattr__(name):
    if name in _SUBPACKAGES:
        return import_module(f"mmbook.{name}")
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'mmbook' has no attribute {name!r}") from None
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
