"""Optional dependencies: import them, or say which extra installs them.

mmbook's core needs numpy, scipy, pandas and formulaic only. The cross-check
needs statsmodels, the figures matplotlib, the Bayesian form ArviZ; each is an
extra of the package (``pip install "mmbook[crosscheck]"``, ``[plots]``,
``[bayes]``, or ``[book]`` for all that the chapters use).
"""

from __future__ import annotations

from importlib import import_module

__all__ = ["require"]


def require(module: str, extra: str):
    """Import ``module``, or raise an ImportError that names the extra to install.

    Parameters
    ----------
    module : str
        Module to import, e.g. ``"statsmodels.api"``.
    extra : str
        The mmbook extra that provides it (``"crosscheck"``, ``"plots"``, ``"bayes"``).

    Raises
    ------
    ImportError
        The module is not installed; the message gives the pip command.
    """
    try:
        return import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        raise ImportError(f"this part of mmbook needs {top}, which is not installed: "
                          f"pip install \"mmbook[{extra}]\"") from exc
