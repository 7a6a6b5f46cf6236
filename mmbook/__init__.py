"""mmbook: linear mixed models, written seven ways.

The package behind the book *Thinking about mixed models*:

* :mod:`mmbook.engine` - lme4's pipeline: formula, design, the penalized
  least squares criterion, the optimizer, the fit object and lme4's verbs
  around it (predict, simulate, anova, confint, bootstrap);
* :mod:`mmbook.forms` - the forms of the model that the book writes out
  (pooling, ICC, the marginal model, Henderson's equations, panel
  estimators, the Bayesian sampler);
* :mod:`mmbook.rcompat` - R compatibility for the book's simulations and
  ``lm`` (R's random numbers, ``summary.lm``);
* :mod:`mmbook.rprint` - R's printing rules, used by every summary;
* :mod:`mmbook.crosscheck`, :mod:`mmbook.plots`, :mod:`mmbook.data` - the
  statsmodels cross-check, figures, data.

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
    "LmerFit": "mmbook.engine.fit",
    "LmerControl": "mmbook.engine.control",
    "all_fit": "mmbook.engine.allfit",
    "anova": "mmbook.engine.lrt",
    "confint": "mmbook.engine.intervals",
    "bootstrap": "mmbook.engine.bootstrap",
    "refit": "mmbook.engine.stages",
    "refit_ml": "mmbook.engine.stages",
    "crosscheck": "mmbook.crosscheck",
    "CrossCheck": "mmbook.crosscheck",
    "RRandom": "mmbook.rcompat.rng",
    "gibbs_lmm": "mmbook.forms.bayes",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

# Functions that share their module's name are bound eagerly: importing the
# submodule (``from mmbook.lm import LmFit``) would otherwise leave the package
# attribute pointing at the module instead of the function.
from .rcompat.lm import lm  # noqa: E402
from .crosscheck import crosscheck  # noqa: E402  (statsmodels is imported only when it runs)


def __getattr__(name):
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'mmbook' has no attribute {name!r}") from None
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
