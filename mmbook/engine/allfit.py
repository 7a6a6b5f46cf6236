"""Refit a model with every optimizer and compare (lme4's ``allFit``).

When a fit's convergence is in doubt, lme4's advice is to refit it with
every optimizer available and look at the spread of the estimates: if they
agree, the warning was a false alarm. :func:`all_fit` does the same with
mmbook's optimizers (:data:`mmbook.engine.optimize.OPTIMIZERS`), each from
the default start and with the fit's other settings, and :class:`AllFit`
holds the tables of lme4's ``summary(allFit(fit))``: ``which_ok``,
``msgs``, ``fixef``, ``llik``, ``sdcor``, ``theta``, ``feval``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from .control import ConvergenceError, PredictorScaleWarning, blas_threads
from .intervals import sdcor
from .optimize import OPTIMIZERS
from .stages import fit_model

__all__ = ["AllFit", "all_fit"]


def _tnames(fit) -> list[str]:
    """lme4's ``tnames``: ``Subject.(Intercept)``, ``Subject.Days.(Intercept)``, ``Subject.Days``."""
    out = []
    for t, grp in zip(fit.terms, fit.group_names):
        cols, rows = np.triu_indices(t.q)  # column-major lower triangle
        for r, c in zip(rows, cols):
            out.append(f"{grp}.{t.cnames[r]}" if r == c else f"{grp}.{t.cnames[r]}.{t.cnames[c]}")
    return out


@dataclass
class AllFit:
    """The fits of one model with every optimizer (lme4's ``allFit`` and its summary).

    Attributes
    ----------
    fit : LmerFit
        The original fit.
    fits : dict
        Optimizer name -> refit, or the exception that stopped it.
    """

    fit: object
    fits: dict = field(default_factory=dict)

    @property
    def which_ok(self) -> pd.Series:
        """Which optimizers returned a fit (an error otherwise)."""
        return pd.Series({k: not isinstance(v, Exception) for k, v in self.fits.items()}, name="which.OK")

    def _ok(self) -> dict:
        return {k: v for k, v in self.fits.items() if not isinstance(v, Exception)}

    @property
    def msgs(self) -> dict:
        """Each fit's convergence messages (the optimizer's, lme4's checks, a singular fit), or its error."""
        return {k: ([f"{type(v).__name__}: {v}"] if isinstance(v, Exception)
                    else [m for c, m in v.messages if c is not PredictorScaleWarning])
                for k, v in self.fits.items()}

    @property
    def converged(self) -> pd.Series:
        return pd.Series({k: v.opt.converged for k, v in self._ok().items()}, name="converged")

    @property
    def fixef(self) -> pd.DataFrame:
        return pd.DataFrame({k: v.fixef for k, v in self._ok().items()}).T

    @property
    def llik(self) -> pd.Series:
        """Log-likelihoods (REML log-likelihood for a REML fit, as lme4's ``logLik``)."""
        return pd.Series({k: v.loglik for k, v in self._ok().items()}, name="llik")

    @property
    def criterion(self) -> pd.Series:
        """REML criterion or deviance of each fit."""
        return pd.Series({k: v.objective for k, v in self._ok().items()}, name="criterion")

    @property
    def sdcor(self) -> pd.DataFrame:
        """Standard deviations and correlations (``theta``'s order, then ``sigma``), lme4's column names."""
        cols = _tnames(self.fit) + ["sigma"]
        return pd.DataFrame({k: sdcor(v) for k, v in self._ok().items()}, index=cols).T

    @property
    def theta(self) -> pd.DataFrame:
        return pd.DataFrame({k: v.theta for k, v in self._ok().items()}, index=_tnames(self.fit)).T

    @property
    def feval(self) -> pd.Series:
        """Criterion evaluations of each fit (restarts, polish and convergence checks included)."""
        return pd.Series({k: v.opt.nfev for k, v in self._ok().items()}, name="feval")

    def summary(self) -> dict:
        """The tables of lme4's ``summary(allFit(fit))``, as a dict."""
        return dict(which_OK=self.which_ok, msgs=self.msgs, fixef=self.fixef, llik=self.llik, sdcor=self.sdcor,
                    theta=self.theta, feval=self.feval)

    def __str__(self) -> str:
        ok = self._ok()
        lines = ["original model:", self.fit.formula,
                 f"optimizers ({len(self.fits)}): {', '.join(self.fits)}"]
        bad = len(self.fits) - len(ok)
        if bad:
            lines.append(f"{bad} optimizer(s) failed")
        if ok:
            dnll = -self.llik.to_numpy()
            dnll = dnll - dnll.min()
            lines.append("differences in negative log-likelihoods:")
            lines.append(f"max= {dnll.max():.3g} ; std dev= {np.std(dnll, ddof=1) if len(dnll) > 1 else 0.0:.3g} ")
        notok = [k for k, v in ok.items() if not v.opt.converged]
        if notok:
            lines.append(f"not converged: {', '.join(notok)}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        import html

        return "<pre>" + html.escape(str(self)) + "</pre>"


def all_fit(fit, optimizers=OPTIMIZERS, maxfun: int | None = None) -> AllFit:
    """Refit ``fit`` with each optimizer (lme4's ``allFit``).

    Parameters
    ----------
    fit : LmerFit
    optimizers : sequence of str
        Default: every optimizer mmbook has (``"L-BFGS-B"``, ``"bobyqa"``,
        ``"Nelder-Mead"``).
    maxfun : int, optional
        Evaluation budget per run (default: the fit's ``control.maxfun``).

    Returns
    -------
    AllFit
        A refit per optimizer, or the error that stopped it (for example
        ``ImportError`` when ``nlopt`` is missing for ``"bobyqa"``): printed,
        it shows what lme4's ``print(allFit(fit))`` shows; its properties
        are the tables of ``summary(allFit(fit))``.

    Raises
    ------
    ValueError
        An unknown optimizer name.
    """
    unknown = [o for o in optimizers if o not in OPTIMIZERS]
    if unknown:
        raise ValueError(f"unknown optimizer {unknown[0]!r}: choose from {', '.join(OPTIMIZERS)}")
    out = AllFit(fit=fit)
    for name in optimizers:
        control = replace(fit.control, optimizer=name, maxfun=maxfun or fit.control.maxfun)
        try:
            with blas_threads(control.blas_threads):
                out.fits[name] = fit_model(fit.mf, fit_class=type(fit), REML=fit.REML, control=control,
                                           data=fit.data, warn=False)
        except (ImportError, ValueError, ConvergenceError, ArithmeticError, np.linalg.LinAlgError) as exc:
            out.fits[name] = exc
    return out
