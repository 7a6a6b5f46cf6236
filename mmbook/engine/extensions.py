"""Methods of a fit that live outside the engine, looked up by name.

lmerTest adds Satterthwaite and Kenward-Roger tests to lme4's fits without
lme4 knowing it; mmbook does the same: :mod:`mmbook.inference` registers its
functions here, and :class:`~mmbook.engine.fit.LmerFit` calls them by name
(``fit.coef_table(ddf="Satterthwaite")``, ``fit.anova(type=3)``,
``fit.contest(L)``). The engine never imports the inference package; it
asks for it to be loaded the first time such a method is used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Callable

__all__ = ["register", "extension"]

_REGISTRY: dict[str, Callable] = {}
_PROVIDERS = {"coef_table": "mmbook.inference", "anova_table": "mmbook.inference",
              "contest": "mmbook.inference", "emmeans": "mmbook.inference", "r2": "mmbook.inference"}


def register(name: str, function: Callable) -> None:
    """Make ``function`` the implementation of the fit method ``name``."""
    _REGISTRY[name] = function


def extension(name: str) -> Callable:
    """The registered implementation of ``name``, loading its provider on first use.

    Raises
    ------
    KeyError
        No provider offers ``name``.
    """
    if name not in _REGISTRY and name in _PROVIDERS:
        import_module(_PROVIDERS[name])
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no implementation of {name!r} is registered") from None
