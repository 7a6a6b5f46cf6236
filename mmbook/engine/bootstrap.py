"""The parametric bootstrap (lme4's ``bootMer``) and its progress bar."""

from __future__ import annotations

import sys
import warnings
from collections import Counter

import numpy as np

from .control import ConvergenceWarning
from .stages import refit
from .predict import as_rng, simulate_matrix

__all__ = ["bootstrap", "BootstrapDraws"]


class _Progress:
    """A text progress bar whose saved output does not depend on timing.

    In a terminal it redraws one line with carriage returns. In a notebook
    it updates a display in place while it runs, empties it at the end and
    prints the finished bar once: saved notebooks, nbval and the built book
    then all hold the same single line, however the run was timed. Written
    to anything else (a file, a pipe, a log) it writes nothing while it runs
    and the finished bar once, as one line.
    """

    def __init__(self, total: int, label: str, enabled: bool, width: int = 40):
        self.total, self.label, self.enabled, self.width = total, label, enabled, width
        self.shown = -1
        self.handle = None
        self.live = False  # redraw while running (a terminal)
        if enabled and _in_kernel():
            from IPython.display import display

            self.handle = display(_Text(""), display_id=True)
        elif enabled:
            isatty = getattr(sys.stdout, "isatty", None)
            self.live = bool(isatty and isatty())
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
        elif self.live:
            sys.stdout.write("\r" + self._text(done))
            sys.stdout.flush()

    def close(self):
        if not self.enabled:
            return
        if self.handle is not None:
            self.handle.update(_Text(""))
            print(self._text(self.total))
        elif self.live:
            sys.stdout.write("\r" + self._text(self.total) + "\n")
            sys.stdout.flush()
        else:
            sys.stdout.write(self._text(self.total) + "\n")
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


def _responses(fit, nsim: int, rng, use_u: bool, type: str) -> np.ndarray:
    """The simulated responses, (n, nsim): lme4's ``simulate`` or, semiparametric, resampled residuals."""
    if type == "parametric":
        return simulate_matrix(fit, nsim, rng, re_form="all" if use_u else None)
    if not use_u:
        raise ValueError("the semiparametric bootstrap needs use_u=True (as lme4's bootMer): it resamples the "
                         "residuals around the conditional fitted values")
    if hasattr(rng, "norm_rand"):
        raise TypeError("the semiparametric bootstrap resamples with numpy: give an int seed or a numpy "
                        "Generator, not an R-compatible generator")
    res = fit.residuals.to_numpy()
    idx = rng.integers(0, fit.nobs, size=(nsim, fit.nobs))
    return fit.fitted.to_numpy()[:, None] + res[idx].T


def bootstrap(fit, statistic, nsim: int = 500, seed=None, use_u: bool = False, type: str = "parametric",
              progress: bool = False, fits=None) -> np.ndarray:
    """Parametric bootstrap: ``statistic`` of refits to responses simulated from ``fit`` (lme4's ``bootMer``).

    For each of ``nsim`` responses ``y*`` drawn from the fitted model, every
    model in ``fits`` (default: ``fit`` itself) is fitted again to ``y*``
    (:func:`mmbook.engine.stages.refit`, same design, REML or ML as the
    fit), and ``statistic`` is applied to the refit.

    Parameters
    ----------
    fit : LmerFit
        The model to simulate from.
    statistic : callable
        ``statistic(refitted)`` -> float or 1-d array (lme4's ``FUN``).
    nsim : int
        Number of simulated responses.
    seed : int, numpy Generator or RRandom, optional
        An int seeds numpy's generator; ``mmbook.RRandom(s)`` draws the
        responses of lme4's ``bootMer(..., seed = s)``.
    use_u : bool
        lme4's ``use.u``. False (default): new random effects and residuals
        each time, ``y* = X beta + Z Lambda u* + e*``. True: the random
        effects held at their conditional modes, only new residuals,
        ``y* = X beta + Z b + e*``.
    type : {"parametric", "semiparametric"}
        ``"semiparametric"`` (only with ``use_u=True``, as lme4):
        ``y* = fitted + residuals resampled with replacement``.
    progress : bool
        Show a text progress bar (its output is the same on every run: in a
        notebook and in anything that is not a terminal it ends as one line).
    fits : list of LmerFit, optional
        Models to refit to each simulated response (default: ``[fit]``);
        ``statistic`` then receives the list of refits. Used for the
        bootstrap of a likelihood-ratio test.

    Returns
    -------
    BootstrapDraws
        An ndarray of shape (nsim,) or (nsim, k) (lme4's ``bootMer(...)$t``),
        with ``n_singular``, ``n_not_converged`` and ``messages`` (what the
        refits and the statistic reported, counted;
        :meth:`BootstrapDraws.summary` says it in one line). When some refit
        did not converge, one ``ConvergenceWarning`` says so (singular
        refits, expected when the simulated variance is small, are only
        counted, as lme4's ``bootMer`` does).

    Raises
    ------
    ValueError
        ``nsim`` not a positive integer; an unknown ``type``; the
        semiparametric bootstrap without ``use_u``.
    """
    if isinstance(nsim, bool) or int(nsim) != nsim or nsim < 1:
        raise ValueError(f"nsim must be a positive integer, got {nsim!r}")
    if type not in ("parametric", "semiparametric"):
        raise ValueError(f"type must be 'parametric' or 'semiparametric', got {type!r}")
    rng = as_rng(seed)
    Y = _responses(fit, int(nsim), rng, bool(use_u), type)
    bar = _Progress(int(nsim), "bootstrap", progress)
    out = []
    n_singular = n_not_converged = 0
    messages: Counter = Counter()
    # each refit's messages are collected (refit(..., warn=False) keeps them in fit.messages), and
    # so are the warnings the statistic raises; one summary warning follows
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(int(nsim)):
            refits = [refit(m, Y[:, i], warn=False) for m in ([fit] if fits is None else fits)]
            out.append(np.asarray(statistic(refits[0] if fits is None else refits), dtype=float))
            n_singular += any(r.is_singular for r in refits)
            n_not_converged += any(not r.opt.converged for r in refits)
            for r in refits:
                messages.update(text for _, text in r.messages)
            bar.update(i + 1)
    messages.update(str(w.message) for w in caught)
    bar.close()
    draws = BootstrapDraws(np.array(out), n_singular=n_singular, n_not_converged=n_not_converged,
                           messages=dict(messages))
    if n_not_converged:  # as lme4's bootMer, warn about failures only; singular refits are counted
        warnings.warn(f"bootstrap: {draws.summary()}", ConvergenceWarning, stacklevel=2)
    return draws


class BootstrapDraws(np.ndarray):
    """The bootstrap's draws (an ndarray) with what the refits reported.

    Attributes
    ----------
    n_singular : int
        Simulations in which a refit was singular.
    n_not_converged : int
        Simulations in which a refit did not converge (then its statistic is
        still included: filter on your own criterion if needed).
    messages : dict
        Each distinct message of the refits and of the statistic -> how many times.
    """

    def __new__(cls, values, n_singular=0, n_not_converged=0, messages=None):
        obj = np.asarray(values).view(cls)
        obj.n_singular, obj.n_not_converged, obj.messages = n_singular, n_not_converged, messages or {}
        return obj

    def __array_finalize__(self, obj):
        self.n_singular = getattr(obj, "n_singular", 0)
        self.n_not_converged = getattr(obj, "n_not_converged", 0)
        self.messages = getattr(obj, "messages", {})

    def __array_wrap__(self, obj, context=None, return_scalar=False):
        # a reduction (np.median, np.quantile, .mean()) gives a plain number, as on an ndarray:
        # a 0-d BootstrapDraws would be an object to pandas (unrounded, unformatted in a table)
        if return_scalar or obj.ndim == 0:
            return np.asarray(obj)[()]
        return super().__array_wrap__(obj, context, return_scalar)

    def summary(self) -> str:
        """One line: how many refits were singular or did not converge, and the messages."""
        n = len(self)
        parts = [f"{self.n_singular} of {n} refits singular", f"{self.n_not_converged} not converged"]
        if self.messages:
            parts.append("messages: " + "; ".join(f"{k} ({v}x)" for k, v in self.messages.items()))
        return ", ".join(parts)


