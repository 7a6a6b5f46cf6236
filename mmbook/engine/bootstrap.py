"""The parametric bootstrap (lme4's ``bootMer``) and its progress bar."""

from __future__ import annotations

import sys
import warnings

import numpy as np

from .stages import refit
from .predict import simulate_matrix

__all__ = ["bootstrap"]


class _Progress:
    """A text progress bar whose saved output does not depend on timing.

    In a terminal it redraws one line with carriage returns. In a notebook
    it updates a display in place while it runs, empties it at the end and
    prints the finished bar once: saved notebooks, nbval and the built book
    then all hold the same single line, however the run was timed.
    """

    def __init__(self, total: int, label: str, enabled: bool, width: int = 40):
        self.total, self.label, self.enabled, self.width = total, label, enabled, width
        self.shown = -1
        self.handle = None
        if enabled and _in_kernel():
            from IPython.display import display

            self.handle = display(_Text(""), display_id=True)
        self.update(0)

    def _text(self, done: int) -> str:
        filled = int(self.width * done / self.total)
        return f"{self.label}: [{'#' * filled}{' ' * (self.width - filled)}] {done}/{self.total}"

    def update(self, done: int):
        if not self.enabled:
            return
        filled = int(self.width * done / self.total)
        if filled == self.shown:
            return
        self.shown = filled
        if self.handle is not None:
            self.handle.update(_Text(self._text(done)))
        else:
            sys.stdout.write("\r" + self._text(done))
            sys.stdout.flush()

    def close(self):
        if not self.enabled:
            return
        if self.handle is not None:
            self.handle.update(_Text(""))
            print(self._text(self.total))
        else:
            sys.stdout.write("\r" + self._text(self.total) + "\n")
            sys.stdout.flush()


class _Text:
    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


def bootstrap(fit, statistic, nsim: int = 500, seed=None, progress: bool = False,
              fits=None) -> np.ndarray:
    """Parametric bootstrap: ``statistic`` of refits to responses simulated from ``fit``.

    Parameters
    ----------
    fit : LmerFit
        The model to simulate from.
    statistic : callable
        ``statistic(refitted)`` -> float or 1-d array.
    nsim : int
    seed : int or numpy Generator
    progress : bool
        Show a text progress bar (its output is the same on every run).
    fits : list of LmerFit, optional
        Models to refit to each simulated response (default: ``[fit]``);
        ``statistic`` then receives the list of refits. Used for the
        bootstrap of a likelihood-ratio test.

    Returns
    -------
    ndarray of shape (nsim,) or (nsim, k)
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    Y = simulate_matrix(fit, int(nsim), rng)
    bar = _Progress(int(nsim), "bootstrap", progress)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(int(nsim)):
            if fits is None:
                out.append(np.asarray(statistic(refit(fit, Y[:, i])), dtype=float))
            else:
                out.append(np.asarray(statistic([refit(m, Y[:, i]) for m in fits]), dtype=float))
            bar.update(i + 1)
    bar.close()
    return np.array(out)


