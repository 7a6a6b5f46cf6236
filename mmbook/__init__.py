"""mmbook: linear mixed models, written seven ways.

The package behind the book *Thinking about mixed models*. Its core fits
linear mixed models the way lme4 does (penalized least squares, profiled
REML/ML criterion); the rest builds the other "forms" of the same model so
that each chapter can show them explicitly.

Public entry points are imported lazily, so ``import mmbook`` stays cheap and
the core never imports statsmodels or matplotlib.
"""

from importlib import import_module

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "load_sleepstudy": "mmbook.data",
    "lm": "mmbook.lm",
    "lmer": "mmbook.lmm",
    "LmerFit": "mmbook.lmm",
    "LmerControl": "mmbook.lmm",
    "anova": "mmbook.inference",
    "crosscheck": "mmbook.crosscheck",
    "CrossCheck": "mmbook.crosscheck",
    "RRandom": "mmbook.rng",
    "gibbs_lmm": "mmbook.bayes",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

# Functions that share their module's name are bound eagerly: importing the
# submodule (``from mmbook.lm import LmFit``) would otherwise leave the package
# attribute pointing at the module instead of the function.
from .lm import lm  # noqa: E402
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
