"""Inference for fitted linear mixed models: prediction, simulation, tests and intervals.

* :func:`predict` - ``X beta`` or ``X beta + Z gamma`` for the data or new data;
* :func:`simulate` - new responses from the fitted model,
  ``y* = X beta + Z Lambda u* + e*`` with ``u* ~ N(0, sigma^2 I)``, ``e* ~ N(0, sigma^2 I)``;
* :func:`refit` - the same model for a new response (the design is reused);
* :func:`bootstrap` - parametric bootstrap of any statistic of a fit;
* :func:`anova` - likelihood-ratio tests of nested models, as lme4's ``anova``;
* :func:`confint` - Wald, profile-likelihood and bootstrap intervals, as lme4's ``confint``.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
from scipy import optimize, stats

from .design import _model_matrix, _factor
from .optimize import minimize_theta
from .pls import PLS

__all__ = ["predict", "simulate", "refit", "bootstrap", "anova", "confint", "param_names"]


# --------------------------------------------------------------------------- predict
def predict(fit, newdata: pd.DataFrame | None = None, re_form="all", allow_new_levels: bool = False) -> pd.Series:
    """Predictions from a fit (lme4's ``predict.merMod``).

    Parameters
    ----------
    fit : LmerFit
    newdata : DataFrame, optional
        Rows to predict for; default: the data the model was fitted to.
    re_form : "all" or None
        ``"all"`` (lme4's ``re.form = NULL``): conditional predictions
        ``X beta + Z gamma``; ``None`` (lme4's ``re.form = NA``): population
        predictions ``X beta``.
    allow_new_levels : bool
        Levels of a grouping factor not seen in the fit get random effects
        of zero (their population prediction) instead of an error.
    """
    if re_form not in ("all", None, "NA", "~0"):
        raise ValueError("re_form must be 'all' (all random effects) or None (fixed effects only)")
    use_re = re_form == "all"
    if newdata is None:
        eta = fit.mf.X @ fit.beta
        if use_re:
            eta = eta + fit.Zgamma()
        return pd.Series(eta, index=fit.mf.frame.index, name="predicted")
    if not isinstance(newdata, pd.DataFrame):
        raise TypeError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}")
    # categorical columns must carry the fitted levels so that the contrasts line up
    X_all, names_all = _model_matrix(fit.mf.x_spec, newdata, "fixed-effects model matrix for newdata")
    idx = [names_all.index(nm) for nm in fit.mf.xnames]
    eta = X_all[:, idx] @ fit.beta
    if use_re:
        for t, g in zip(fit.terms, fit.gamma):
            z, _ = _model_matrix(t.spec, newdata, f"random-effects model matrix of ({t.bar.text}) for newdata")
            missing = [v for v in t.bar.group_vars if v not in newdata.columns]
            if missing:
                raise KeyError(f"newdata has no column {missing[0]!r} (grouping factor of ({t.bar.text}))")
            labels = _group_labels(newdata, t.group)
            pos = pd.Index(t.levels).get_indexer(labels)
            new = pos < 0
            if new.any() and not allow_new_levels:
                bad = sorted(set(np.asarray(labels)[new]))[:5]
                raise ValueError(f"new levels detected in newdata for {t.group!r}: {', '.join(map(str, bad))}"
                                 " (use allow_new_levels=True to predict them at the population level)")
            contrib = np.einsum("nq,nq->n", z, g[np.where(new, 0, pos)])
            eta = eta + np.where(new, 0.0, contrib)
    return pd.Series(eta, index=newdata.index, name="predicted")


def _group_labels(frame: pd.DataFrame, group: str) -> list[str]:
    codes, labels = _factor(frame, group)
    return [labels[c] for c in codes]


# -------------------------------------------------------------------------- simulate
def _simulate_matrix(fit, nsim: int, rng: np.random.Generator) -> np.ndarray:
    n = fit.nobs
    eta = fit.mf.X @ fit.beta
    Y = np.repeat(eta[:, None], nsim, axis=1)
    for k, t in enumerate(fit.terms):
        u = rng.standard_normal((nsim, t.nlevels, t.q)) * fit.sigma
        gamma = u @ fit.T(k).T  # (nsim, nlevels, q)
        Y += np.einsum("nq,snq->ns", t.z, gamma[:, t.refs, :])
    Y += fit.sigma * rng.standard_normal((nsim, n)).T
    return Y


def simulate(fit, nsim: int = 1, seed=None) -> pd.DataFrame:
    """Responses simulated from the fitted model (lme4's ``simulate``).

    Each column is one draw of ``y* = X beta + sum_k Z_k T_k u_k* + e*`` with
    ``u_k* ~ N(0, sigma^2 I)`` and ``e* ~ N(0, sigma^2 I)``, at the estimates.

    Parameters
    ----------
    nsim : int
    seed : int or numpy Generator, optional

    Returns
    -------
    DataFrame with columns ``sim_1``, ..., ``sim_<nsim>``.
    """
    if int(nsim) != nsim or nsim < 1:
        raise ValueError(f"nsim must be a positive integer, got {nsim!r}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    Y = _simulate_matrix(fit, int(nsim), rng)
    return pd.DataFrame(Y, index=fit.mf.frame.index, columns=[f"sim_{i + 1}" for i in range(int(nsim))])


# ----------------------------------------------------------------------------- refit
def refit(fit, y, REML: bool | None = None):
    """The same model fitted to a new response ``y`` (lme4's ``refit``).

    The model frame, X and the random-effects terms are reused; the
    optimizer starts from the fit's ``theta``.
    """
    from .lmm import LmerFit, SingularFitWarning  # noqa: F401

    y = np.asarray(y, dtype=float)
    if y.shape != (fit.nobs,):
        raise ValueError(f"y must have {fit.nobs} values, got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("y has missing or infinite values")
    mf = replace(fit.mf, y=y)
    pls = PLS(mf, REML=fit.REML if REML is None else REML)
    c = fit.control
    opt = minimize_theta(pls.objective, fit.opt.theta, pls.lower, grad_step=c.grad_step, ftol=c.ftol,
                         gtol=c.gtol, polish=c.polish, central=c.central)
    return LmerFit(mf=mf, pls=pls, opt=opt, control=c, data=fit.data)


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
    Y = _simulate_matrix(fit, int(nsim), rng)
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


# ----------------------------------------------------------------------------- anova
def anova(*fits, names=None, refit_ml: bool = True) -> pd.DataFrame:
    """Likelihood-ratio tests of nested models (lme4's ``anova.merMod``).

    REML fits are refitted by maximum likelihood first (as lme4 does, with
    its message "refitting model(s) with ML (instead of REML)"), the models
    are ordered by their number of parameters, and each is compared with
    the previous one: ``Chisq = deviance_previous - deviance``, ``Df`` the
    difference in parameters, ``Pr(>Chisq)`` from the chi-square
    distribution.

    Returns
    -------
    DataFrame with columns npar, AIC, BIC, logLik, deviance, Chisq, Df,
    Pr(>Chisq), indexed by model name.
    """
    if len(fits) < 2:
        raise ValueError("anova needs at least two fitted models to compare")
    names = list(names) if names is not None else [f"model{i + 1}" for i in range(len(fits))]
    if len(names) != len(fits):
        raise ValueError("names must have one entry per model")
    nobs = {f.nobs for f in fits}
    if len(nobs) > 1:
        raise ValueError(f"models were not all fitted to the same number of observations ({sorted(nobs)})")
    ys = [f.mf.y for f in fits]
    if any(not np.array_equal(ys[0], y) for y in ys[1:]):
        raise ValueError("models were not all fitted to the same response")
    ml = [f.refit_ml() if (refit_ml and f.REML) else f for f in fits]
    order = sorted(range(len(ml)), key=lambda i: ml[i].npar)
    rows = []
    prev = None
    for i in order:
        m = ml[i]
        dev = -2.0 * m.loglik
        row = {"npar": m.npar, "AIC": m.aic, "BIC": m.bic, "logLik": m.loglik, "deviance": dev,
               "Chisq": np.nan, "Df": np.nan, "Pr(>Chisq)": np.nan}
        if prev is not None:
            chisq = max(prev[1] - dev, 0.0)
            df = m.npar - prev[0]
            row.update({"Chisq": chisq, "Df": df,
                        "Pr(>Chisq)": stats.chi2.sf(chisq, df) if df > 0 else np.nan})
        rows.append(row)
        prev = (m.npar, dev)
    out = pd.DataFrame(rows, index=[names[i] for i in order])
    out["npar"] = out["npar"].astype(int)
    out["Df"] = out["Df"].astype("Int64")
    return out


# --------------------------------------------------------------------------- confint
def param_names(fit) -> list[str]:
    """lme4's names of the variance parameters (``oldNames = TRUE``): .sig01, ..., .sigma."""
    k = sum(t.ntheta for t in fit.terms)
    return [f".sig{i + 1:02d}" for i in range(k)] + [".sigma"]


def _sdcor(fit) -> np.ndarray:
    """Variance parameters on lme4's sd/cor scale, in ``theta``'s order, then sigma."""
    out = []
    for k, t in enumerate(fit.terms):
        S = fit.psi(k)
        sd = np.sqrt(np.diag(S))
        rows, cols = np.triu_indices(t.q)[::-1]  # (row, col) with row >= col, column-major
        for r, c in zip(*_colmajor(t.q)):
            out.append(sd[r] if r == c else (S[r, c] / (sd[r] * sd[c]) if sd[r] * sd[c] > 0 else 0.0))
    out.append(fit.sigma)
    return np.array(out)


def _colmajor(q):
    cols, rows = np.triu_indices(q)
    return rows, cols


def _theta_sigma(fit, phi: np.ndarray):
    """Map sd/cor parameters (and sigma, last) to ``(theta, sigma)``; None if invalid."""
    sigma = phi[-1]
    if not sigma > 0:
        return None
    theta, pos = [], 0
    for t in fit.terms:
        rows, cols = _colmajor(t.q)
        vals = phi[pos:pos + t.ntheta]
        pos += t.ntheta
        sd = np.zeros(t.q)
        R = np.eye(t.q)
        for v, r, c in zip(vals, rows, cols):
            if r == c:
                sd[r] = v
            else:
                R[r, c] = R[c, r] = v
        if np.any(sd < 0):
            return None
        try:
            Lr = np.linalg.cholesky(R)
        except np.linalg.LinAlgError:
            return None
        T = (sd / sigma)[:, None] * Lr
        theta.extend(T[rows, cols])
    return np.array(theta), sigma


def _wald(fit, level):
    z = stats.norm.ppf(0.5 + level / 2)
    se = np.sqrt(np.diag(fit.vcov.to_numpy()))
    return np.column_stack([fit.beta - z * se, fit.beta + z * se])


def _profile_intervals(fit, level: float) -> np.ndarray:
    """Profile-likelihood intervals on the ML deviance (what lme4's ``confint`` does, REML fits included)."""
    mfit = fit.refit_ml() if fit.REML else fit
    pls = PLS(mfit.mf, REML=False)
    n = mfit.nobs
    zcrit = stats.norm.ppf(0.5 + level / 2)
    dev_min = mfit.objective

    def dev_full(phi):
        ts = _theta_sigma(mfit, phi)
        if ts is None:
            return np.inf
        theta, sigma = ts
        try:
            s = pls.solve(theta)
        except Exception:
            return np.inf
        return s.logdet_L + n * np.log(2 * np.pi * sigma ** 2) + s.pwrss / sigma ** 2

    phi_hat = _sdcor(mfit)
    names = param_names(mfit)
    bounds = []
    for t in mfit.terms:
        for r, c in zip(*_colmajor(t.q)):
            bounds.append((0.0, None) if r == c else (-1.0 + 1e-9, 1.0 - 1e-9))
    bounds.append((1e-12 * max(phi_hat[-1], 1.0), None))

    def profile_var(j, v, start):
        free = [i for i in range(len(phi_hat)) if i != j]

        def f(z):
            phi = start.copy()
            phi[free] = z
            phi[j] = v
            return dev_full(phi)

        if not free:
            return f(np.array([])), start
        lo = np.array([bounds[i][0] if bounds[i][0] is not None else -np.inf for i in free])
        hi = np.array([bounds[i][1] if bounds[i][1] is not None else np.inf for i in free])
        res = minimize_theta(f, np.clip(start[free], lo, hi), lo, upper=hi, polish=False)
        new = start.copy()
        new[free] = res.theta
        new[j] = v
        return res.fun, new

    out = []
    for j in range(len(phi_hat)):
        lo_b, hi_b = bounds[j]
        row = []
        for side in (-1, 1):
            cache = {"start": phi_hat.copy()}

            def zeta(v):
                d, cache["start"] = profile_var(j, v, cache["start"])
                return np.sign(v - phi_hat[j]) * np.sqrt(max(d - dev_min, 0.0))

            step = 0.25 * abs(phi_hat[j]) + 0.05 * (1.0 if j < len(phi_hat) - 1 else phi_hat[-1])
            a, v = phi_hat[j], phi_hat[j]
            found = None
            for _ in range(40):
                v = v + side * step
                if lo_b is not None and v <= lo_b:
                    v = lo_b
                if hi_b is not None and v >= hi_b:
                    v = hi_b
                zv = zeta(v)
                if side * zv >= zcrit:
                    found = optimize.brentq(lambda x: zeta(x) - side * zcrit, min(a, v), max(a, v), xtol=1e-9)
                    break
                if (lo_b is not None and v == lo_b) or (hi_b is not None and v == hi_b):
                    found = v
                    break
                a = v
                step *= 1.6
            row.append(np.nan if found is None else found)
        out.append(row)

    # fixed effects: fix beta_j, minimise the ML deviance over theta (sigma and beta_-j profiled)
    for j in range(mfit.mf.p):
        row = []
        for side in (-1, 1):
            def dev_beta(v, theta0=None):
                def f(theta):
                    try:
                        s = pls.solve(theta)
                    except Exception:
                        return np.inf
                    RXinv = np.linalg.solve(s.RX, np.eye(len(s.RX)))
                    Vjj = (RXinv.T @ RXinv)[j, j]
                    r2 = s.pwrss + (v - s.beta[j]) ** 2 / Vjj
                    return s.logdet_L + n * (1 + np.log(2 * np.pi * r2 / n))
                res = minimize_theta(f, mfit.opt.theta if theta0 is None else theta0, pls.lower, polish=False)
                return res.fun

            def zeta(v):
                return np.sign(v - mfit.beta[j]) * np.sqrt(max(dev_beta(v) - dev_min, 0.0))

            se = np.sqrt(mfit.vcov.to_numpy()[j, j])
            a, v, step, found = mfit.beta[j], mfit.beta[j], se * 1.5, None
            for _ in range(40):
                v = v + side * step
                if side * zeta(v) >= zcrit:
                    found = optimize.brentq(lambda x: zeta(x) - side * zcrit, min(a, v), max(a, v), xtol=1e-9)
                    break
                a = v
                step *= 1.5
            row.append(np.nan if found is None else found)
        out.append(row)
    return np.array(out)


def confint(fit, method: str = "Wald", level: float = 0.95, nsim: int = 500, seed=None,
            progress: bool = False) -> pd.DataFrame:
    """Confidence intervals for a fit's parameters (lme4's ``confint.merMod``, ``oldNames = TRUE``).

    Rows: ``.sig01``, ``.sig02``, ... (the random-effects standard deviations
    and correlations in ``theta``'s order), ``.sigma``, then the fixed
    effects. Columns: the lower and upper limits (``"2.5 %"``, ``"97.5 %"``).

    Parameters
    ----------
    method : {"Wald", "profile", "boot"}
        ``Wald``: ``beta_j -/+ z se_j`` for the fixed effects, missing for the
        variance parameters (as lme4). ``profile``: where the signed square
        root of the profiled ML deviance crosses the normal quantiles (lme4
        profiles the ML deviance also for REML fits, so a REML fit is refitted
        by ML first). ``boot``: percentiles of a parametric bootstrap.
    """
    if not 0 < level < 1:
        raise ValueError("level must be between 0 and 1")
    lo_name, hi_name = f"{100 * (1 - level) / 2:g} %", f"{100 * (1 + level) / 2:g} %"
    names = param_names(fit) + list(fit.fixef.index)
    nvar = len(param_names(fit))
    method = method.lower()
    if method == "wald":
        ci = np.vstack([np.full((nvar, 2), np.nan), _wald(fit, level)])
    elif method == "profile":
        ci = _profile_intervals(fit, level)
    elif method == "boot":
        draws = bootstrap(fit, lambda f: np.concatenate([_sdcor(f), f.beta]), nsim=nsim, seed=seed,
                          progress=progress)
        ci = np.column_stack([np.quantile(draws, (1 - level) / 2, axis=0),
                              np.quantile(draws, (1 + level) / 2, axis=0)])
    else:
        raise ValueError(f"method must be 'Wald', 'profile' or 'boot', got {method!r}")
    return pd.DataFrame(ci, index=names, columns=[lo_name, hi_name])
