"""Predictions and simulated responses from a fitted linear mixed model.

* :func:`predict` - ``X beta`` plus the random effects named by ``re_form``
  (all of them, none, or a subset given as a formula), for the data or new
  data (lme4's ``predict.merMod``);
* :func:`simulate` - new responses from the fitted model (lme4's
  ``simulate.merMod``): ``y* = X beta + Z_c b_c + Z_s Lambda_s u* + e*``, where
  the random effects named by ``re_form`` (``b_c``) are held at their
  conditional modes and the others are drawn afresh, ``u* ~ N(0, sigma^2 I)``,
  ``e* ~ N(0, sigma^2 I)``.

Both include the offset, and on the fitted data follow ``na_action``
(padded with NaN at removed rows for ``"exclude"``); new data are checked
and encoded by :mod:`mmbook.engine.newdata` (the fit's factor levels,
contrasts and transform state). Simulated residuals have variance
``sigma^2 / w_i`` for prior weights ``w``.

``re_form`` follows lme4's ``re.form``: ``"all"`` (R's ``NULL``) uses every
random-effects term; ``None``, ``"NA"`` or ``"~0"`` (R's ``NA``, ``~0``) none;
a formula such as ``"~ (1 | g)"`` the terms it names. A term of ``re_form``
is matched with the model by its grouping factor and its columns, so
``~ (1 | Subject)`` takes only the intercepts of a model's
``(Days | Subject)``, as in lme4.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .design import factor_codes, model_matrix
from .formula import BarTerm, parse_formula
from .newdata import newdata_fixed, newdata_random
from .residual import residual_correlation
from .smooth import is_smooth, newdata_smooth

__all__ = ["predict", "simulate", "simulate_matrix", "linear_predictor", "re_form_terms", "normal_draws", "as_rng"]

_NO_RE = ("NA", "~0", "~ 0", "0", "~NA")


def re_form_terms(fit, re_form) -> list[BarTerm] | None:
    """The random-effects terms that ``re_form`` names.

    Returns ``None`` for "all terms" (``"all"``), an empty list for "no
    terms" (``None``, ``"NA"``, ``"~0"``) and the expanded bar terms of a
    formula such as ``"~ (1 | g) + (0 + x | h)"`` otherwise.

    Raises
    ------
    ValueError
        ``re_form`` is not one of these, or its formula has no
        random-effects term, or a term whose grouping factor is not in the
        model.
    """
    if re_form is None:
        return []
    if not isinstance(re_form, str):
        raise TypeError("re_form must be 'all', None (no random effects) or a formula string such as "
                        f"'~ (1 | g)'; got {type(re_form).__name__}")
    text = re_form.strip()
    if text == "all":
        return None
    if text in _NO_RE or text.replace(" ", "") in _NO_RE:
        return []
    rhs = text[1:] if text.startswith("~") else text
    if "~" in rhs or "|" not in rhs:
        raise ValueError(f"re_form {re_form!r} must be 'all', None (no random effects) or a formula of "
                         "random-effects terms such as '~ (1 | g)'")
    try:
        bars = parse_formula(f"re_form_response ~ 0 + {rhs}").random
    except ValueError as exc:
        raise ValueError(f"re_form {re_form!r}: {exc}") from None
    groups = {t.group for t in fit.terms}
    bad = [b.group for b in bars if b.group not in groups]
    if bad:
        raise ValueError(f"re_form names grouping factor {bad[0]!r}, which is not in the model "
                         f"(its grouping factors: {', '.join(sorted(groups))})")
    return list(bars)


def _same_bar(a: BarTerm, b: BarTerm) -> bool:
    return a.group == b.group and a.expr.replace(" ", "") == b.expr.replace(" ", "")


def _frame_for(fit, newdata):
    if newdata is None:
        return fit.mf.frame
    if not isinstance(newdata, pd.DataFrame):
        raise TypeError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}")
    return newdata


def _level_positions(levels, frame: pd.DataFrame, group: str, what: str, allow_new_levels: bool):
    """Position of every row's level in ``levels`` (-1 for a level the fit has not seen)."""
    missing = [v for v in (g.strip("() ") for g in group.split(":")) if v not in frame.columns]
    if missing:
        raise KeyError(f"newdata has no column {missing[0]!r} (grouping factor of {what})")
    codes, labels = factor_codes(frame, group)
    pos = pd.Index(levels).get_indexer(np.asarray(labels, dtype=object))[codes]
    new = pos < 0
    if new.any() and not allow_new_levels:
        bad = sorted({labels[c] for c in codes[new]})[:5]
        raise ValueError(f"new levels detected in newdata for {group!r}: {', '.join(map(str, bad))}"
                         " (use allow_new_levels=True to predict them at the population level)")
    return pos, codes, labels


def _smooth_part(fit, frame: pd.DataFrame | None) -> np.ndarray:
    """``sum_s Z_s b_s``: the smooths' penalized parts (part of every prediction, whatever ``re_form``)."""
    n = fit.nobs if frame is None else len(frame)
    eta = np.zeros(n)
    for t, g in zip(fit.terms, fit.gamma):
        if is_smooth(t):
            z = t.z if frame is None else newdata_smooth(fit.mf, t, frame)
            eta += z @ g[0]
    return eta


def _term_columns(fit, bar: BarTerm, frame: pd.DataFrame):
    """The columns of ``bar`` on ``frame`` with their names; the fitted term's spec when it is one."""
    for t in fit.terms:
        if _same_bar(t.bar, bar) and t.spec is not None:
            return model_matrix(t.spec, frame, f"random-effects model matrix of ({bar.text})")
    return model_matrix(bar.expr, frame, f"random-effects model matrix of ({bar.text})")


def _re_contribution(fit, frame: pd.DataFrame, bars: list[BarTerm], allow_new_levels: bool) -> np.ndarray:
    """``sum_bars Z_bar b_bar`` on ``frame``: the conditional modes of the columns each bar names."""
    eta = np.zeros(len(frame))
    ranef = fit.ranef
    for bar in bars:
        z, cnames = _term_columns(fit, bar, frame)
        re = ranef[bar.group]
        absent = [c for c in cnames if c not in re.columns]
        if absent:
            raise ValueError(f"random effects specified in re_form that were not present in the model: "
                             f"{', '.join(absent)} for {bar.group!r} (the model has {', '.join(re.columns)})")
        B = re[cnames].to_numpy()
        pos, _, _ = _level_positions(list(re.index), frame, bar.group, f"({bar.text})", allow_new_levels)
        new = pos < 0
        contrib = np.einsum("nq,nq->n", z, B[np.where(new, 0, pos)])
        eta += np.where(new, 0.0, contrib)
    return eta


def predict(fit, newdata: pd.DataFrame | None = None, re_form="all", allow_new_levels: bool = False) -> pd.Series:
    """Predictions from a fit (lme4's ``predict.merMod``).

    .. math:: \\hat y = X\\hat\\beta + \\sum_{k \\in \\text{re\\_form}} Z_k \\hat b_k

    Parameters
    ----------
    fit : LmerFit
    newdata : DataFrame, optional
        Rows to predict for; default: the data the model was fitted to.
    re_form : "all", None or str
        ``"all"`` (lme4's ``re.form = NULL``): conditional predictions
        ``X beta + Z b``; ``None`` (or ``"NA"``, ``"~0"``; lme4's
        ``re.form = NA``): population predictions ``X beta``; a formula of
        random-effects terms such as ``"~ (1 | g)"``: only the random effects
        it names, matched by grouping factor and column name (so
        ``"~ (1 | g)"`` uses only the intercepts of a ``(x | g)`` term).
    allow_new_levels : bool
        Levels of a grouping factor not seen in the fit get random effects
        of zero (their population prediction) instead of an error.

    Returns
    -------
    Series of length ``len(newdata)`` (or ``nobs``), named ``"predicted"``.

    Raises
    ------
    ValueError
        Bad ``re_form``; new levels without ``allow_new_levels``.
    KeyError
        ``newdata`` lacks a variable of the model.
    """
    eta = linear_predictor(fit, newdata, re_form_terms(fit, re_form), allow_new_levels)
    if newdata is None:
        return fit.mf.pad(eta, "predicted")
    return pd.Series(eta, index=newdata.index, name="predicted")


def linear_predictor(fit, newdata, bars, allow_new_levels: bool = False) -> np.ndarray:
    """``offset + X beta`` plus the random effects ``bars`` names (None: all), unpadded, shape (n,)."""
    if newdata is None:
        eta = fit.mf.X @ fit.beta + fit.offset
        if bars is None:
            eta = eta + fit.Zgamma()
        else:
            eta = eta + _smooth_part(fit, None)
            if bars:
                eta = eta + _re_contribution(fit, fit.mf.frame, bars, allow_new_levels=False)
        return eta
    if not isinstance(newdata, pd.DataFrame):
        raise TypeError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}")
    # factor levels, contrasts and transform state (scale, poly, bs) are the fit's
    X, offset = newdata_fixed(fit.mf, newdata)
    eta = X @ fit.beta + offset
    if bars is None:
        for t, g in zip(fit.terms, fit.gamma):
            if is_smooth(t):  # a smooth: its one level holds every row
                eta = eta + newdata_smooth(fit.mf, t, newdata) @ g[0]
                continue
            z, pos = newdata_random(fit.mf, t, newdata, allow_new_levels)
            new = pos < 0
            eta = eta + np.einsum("nq,nq->n", np.where(new[:, None], 0.0, z), g[np.where(new, 0, pos)])
    else:
        eta = eta + _smooth_part(fit, newdata)
        if bars:
            eta = eta + _re_contribution(fit, newdata, bars, allow_new_levels)
    return eta


# -------------------------------------------------------------------------- simulate
def as_rng(seed):
    """A random-number source from ``seed``.

    A :class:`numpy.random.Generator` or an R-compatible generator (an object
    with ``norm_rand(n)``, such as :class:`mmbook.RRandom`) is used as is;
    anything else seeds :func:`numpy.random.default_rng`.
    """
    if isinstance(seed, np.random.Generator) or hasattr(seed, "norm_rand"):
        return seed
    return np.random.default_rng(seed)


def normal_draws(rng, n: int) -> np.ndarray:
    """``n`` standard normal draws from ``rng`` (numpy Generator or R-compatible generator)."""
    if hasattr(rng, "norm_rand"):
        return np.asarray(rng.norm_rand(n), dtype=float)
    return rng.standard_normal(n)


def _lme4_term_order(nlevels: list[int]) -> list[int]:
    """lme4's ``mkReTrms`` order: by decreasing number of levels (``rev(order(nl))``) when they differ."""
    nl = np.asarray(nlevels)
    if len(nl) > 1 and np.any(np.diff(nl) > 0):
        return list(np.argsort(nl, kind="stable")[::-1])
    return list(range(len(nl)))


def _simulated_terms(fit, frame: pd.DataFrame, on_fit_frame: bool, allow_new_levels: bool, cond):
    """The terms to draw afresh on ``frame``: ``(term index, row level index, row columns, nlevels)``.

    On the fitted data every level of every term is drawn (lme4's order). On
    new data, as lme4's ``mkNewReTrms``, only the levels present are drawn,
    in the fit's level order, and the terms are ordered again by their number
    of levels; a level the fit has not seen (``allow_new_levels=True``) is
    drawn like any other, after the fitted levels.
    """
    out = []
    for k, t in enumerate(fit.terms):
        if cond is None or any(_same_bar(t.bar, b) for b in cond) or is_smooth(t):
            continue  # conditioned on (a smooth is part of the mean: held at its estimate)
        if on_fit_frame:
            out.append((k, t.refs, t.z, t.nlevels))
            continue
        z, _ = model_matrix(t.spec, frame, f"random-effects model matrix of ({t.bar.text}) for newdata")
        pos, codes, labels = _level_positions(t.levels, frame, t.group, f"({t.bar.text})", allow_new_levels)
        new_labels = sorted({labels[c] for c in codes[pos < 0]})
        key = np.where(pos >= 0, pos, len(t.levels) + pd.Index(new_labels).get_indexer(
            np.asarray(labels, dtype=object)[codes]))
        used, refs = np.unique(key, return_inverse=True)
        out.append((k, refs, z, len(used)))
    if not on_fit_frame and out:
        out = [out[i] for i in _lme4_term_order([o[3] for o in out])]
    return out


def simulate_matrix(fit, nsim: int, rng, re_form=None, newdata: pd.DataFrame | None = None,
                    allow_new_levels: bool = False) -> np.ndarray:
    """Simulated responses as an array of shape (n, nsim); see :func:`simulate`.

    The draws are taken in lme4's order: all the spherical random effects of
    the first simulation (terms, then levels, then columns, as the columns of
    ``Z``), then those of the second, ...; then the residuals of the first
    simulation, the second, ... With an R-compatible generator
    (:class:`mmbook.RRandom`) the result is lme4's ``simulate`` draw for draw.
    """
    nsim = int(nsim)
    cond = re_form_terms(fit, re_form)
    on_fit_frame = newdata is None
    frame = _frame_for(fit, newdata)
    eta = linear_predictor(fit, newdata, cond, allow_new_levels)
    n = len(eta)
    terms = _simulated_terms(fit, frame, on_fit_frame, allow_new_levels, cond)
    Q = sum(nl * fit.terms[k].q for k, _, _, nl in terms)
    reff = np.zeros((nsim, n))
    if Q:
        u = normal_draws(rng, nsim * Q).reshape(nsim, Q)
        off = 0
        for k, refs, z, nl in terms:
            q = fit.terms[k].q
            uk = u[:, off:off + nl * q].reshape(nsim, nl, q)
            off += nl * q
            bk = uk @ fit.T(k).T  # (nsim, nl, q): Lambda u per level
            reff += np.einsum("nq,snq->sn", z, bk[:, refs, :])
    e = normal_draws(rng, nsim * n).reshape(nsim, n)
    if on_fit_frame:  # prior weights: residual sd sigma / sqrt(w_i); a row of weight 0 keeps its mean
        w = fit.weights
        e = e * np.where(w > 0, 1.0 / np.sqrt(np.where(w > 0, w, 1.0)), 0.0)
    corr = fit.mf.residual
    if corr is not None:  # correlated residuals: e = W^{-1} (independent draws)
        if not on_fit_frame:
            corr = residual_correlation(corr.spec, frame, estimate=False)
        e = corr.color(float(fit.opt.theta[sum(t.ntheta for t in fit.terms)]), e.T).T
    return eta[:, None] + fit.sigma * (reff + e).T


def simulate(fit, nsim: int = 1, seed=None, use_u: bool | None = None, re_form=None,
             newdata: pd.DataFrame | None = None, allow_new_levels: bool = False) -> pd.DataFrame:
    """Responses simulated from the fitted model (lme4's ``simulate.merMod``).

    Each column is one draw of

    .. math:: y^* = X\\hat\\beta + Z_c \\hat b_c + \\hat\\sigma (Z_s \\Lambda_s u^* + e^*),
              \\qquad u^* \\sim N(0, I), \\; e^* \\sim N(0, I),

    where the terms named by ``re_form`` (``c``) keep their conditional modes
    and the other terms (``s``) are drawn afresh.

    Parameters
    ----------
    nsim : int
        Number of simulated responses.
    seed : int, numpy Generator or RRandom, optional
        An int seeds numpy's generator. ``mmbook.RRandom(s)`` reproduces
        lme4's ``simulate(fit, seed = s)`` draw for draw.
    use_u : bool, optional
        lme4's ``use.u``: True holds all random effects at their conditional
        modes (only new residuals), the same as ``re_form="all"``; False
        draws all of them (``re_form=None``). Give ``use_u`` or
        ``re_form``, not both.
    re_form : None, "all" or str
        Random-effects terms to condition on (see :func:`predict`); default
        None: condition on none, simulate all (lme4's ``re.form = NA``).
    newdata : DataFrame, optional
        Simulate for these rows instead of the fitted data: only the levels
        present in ``newdata`` are drawn.
    allow_new_levels : bool
        Allow levels the fit has not seen: they get their conditional mode 0
        in the conditioned terms and a fresh draw in the simulated ones
        (lme4 gives them no random effect at all in the simulated terms).

    Returns
    -------
    DataFrame with columns ``sim_1``, ..., ``sim_<nsim>`` and the index of the
    fitted frame (or of ``newdata``).

    Raises
    ------
    ValueError
        ``nsim`` not a positive integer; both ``use_u`` and ``re_form``.

    Notes
    -----
    lme4 1.1-31 draws a simulated term with the ``theta`` of the model's first
    terms when ``re.form`` conditions on an earlier term (its ``mkNewReTrms``
    indexes the full ``theta`` with the sub-model's ``Lind``); mmbook uses
    each term's own ``theta``.
    """
    if isinstance(nsim, bool) or int(nsim) != nsim or nsim < 1:
        raise ValueError(f"nsim must be a positive integer, got {nsim!r}")
    if use_u is not None:
        if re_form is not None:
            raise ValueError("give only one of use_u and re_form (use_u=True is re_form='all')")
        re_form = "all" if use_u else None
    rng = as_rng(seed)
    Y = simulate_matrix(fit, int(nsim), rng, re_form=re_form, newdata=newdata, allow_new_levels=allow_new_levels)
    names = [f"sim_{i + 1}" for i in range(int(nsim))]
    if newdata is None:  # the fitted rows, padded at removed rows under na_action="exclude"
        return pd.DataFrame({nm: fit.mf.pad(Y[:, i], nm) for i, nm in enumerate(names)})
    return pd.DataFrame(Y, index=newdata.index, columns=names)
