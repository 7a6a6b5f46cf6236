"""Figures for the book. The only mmbook module that imports matplotlib.

Figures are built on :class:`matplotlib.figure.Figure` directly, not through
``pyplot``: nothing is left open in pyplot's global state, and a notebook
shows the returned figure once, as the value of its cell (with the inline
backend active, e.g. ``%matplotlib inline``).

Two kinds of figure live here:

* :func:`facet_lines`, one small panel per cluster with lines drawn over the
  data (the trellis plots of the book's chapters);
* the diagnostic figures an lme4 user looks at first:
  :func:`resid_fitted` (residuals against fitted values, R's ``plot(fit)``),
  :func:`qq_residuals` (normal QQ plot of the residuals, ``qqnorm(resid(fit))``),
  :func:`qq_ranef` (normal QQ plot of each random effect) and
  :func:`caterpillar` (conditional modes with conditional-variance intervals,
  ``lattice::dotplot(ranef(fit, condVar = TRUE))``).

Every diagnostic function draws into a new figure, or into ``ax`` / ``axes``
when given, and returns the figure. The plotted numbers are the fit's own
(``fit.fitted``, ``fit.residuals``, ``fit.ranef``, ``fit.ranef_condvar``);
nothing is re-estimated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .extras import require

Figure = require("matplotlib.figure", "plots").Figure
MaxNLocator = require("matplotlib.ticker", "plots").MaxNLocator

__all__ = ["facet_lines", "resid_fitted", "qq_residuals", "qq_ranef", "caterpillar",
           "normal_quantiles", "profile_zeta", "profile_density"]

# Line styles used in order when the caller gives none: the first line (usually
# the population line) is solid black, the next ones are coloured and dashed.
_DEFAULT_STYLES = (
    {"color": "black", "lw": 1.4, "ls": "-"},
    {"color": "#d95f02", "lw": 1.2, "ls": "--"},
    {"color": "#1b9e77", "lw": 1.2, "ls": ":"},
    {"color": "#7570b3", "lw": 1.2, "ls": "-."},
)


def _group_order(data: pd.DataFrame, group: str, order: Sequence | None) -> list:
    col = data[group]
    if order is not None:
        present = set(col.unique())
        return [g for g in order if g in present]
    if isinstance(col.dtype, pd.CategoricalDtype):
        present = set(col.unique())
        return [g for g in col.cat.categories if g in present]
    return list(dict.fromkeys(col))


def _classify(name: str, spec, data: pd.DataFrame):
    """Say how a line is given: one (intercept, slope) pair for every panel,
    a table of per-group pairs, or one fitted value per row of ``data``."""
    if isinstance(spec, pd.DataFrame):
        if spec.shape[1] != 2:
            raise ValueError(f"line {name!r}: a DataFrame of per-group lines needs exactly two columns "
                             f"(intercept, slope), it has {spec.shape[1]}")
        return "per_group", spec
    arr = np.asarray(spec, dtype=float) if not isinstance(spec, Mapping) else None
    if arr is None:
        raise TypeError(f"line {name!r}: give a pair (intercept, slope), a DataFrame of per-group "
                        "(intercept, slope) rows, or one fitted value per row of the data")
    if arr.shape == (2,):
        return "common", arr
    if arr.ndim == 1 and arr.shape[0] == len(data):
        return "fitted", arr
    raise ValueError(f"line {name!r}: expected a pair (intercept, slope) or {len(data)} fitted values "
                     f"(one per row of the data), got an array of shape {arr.shape}")


def facet_lines(data: pd.DataFrame, x: str, y: str, group: str, lines=None, *,
                ncols: int = 6, order: Sequence | None = None, points: bool = True,
                styles: Mapping[str, dict] | None = None, xlabel: str | None = None,
                ylabel: str | None = None, title: str | None = None,
                panel_size: tuple[float, float] = (1.3, 1.15), legend: bool = True,
                point_style: dict | None = None) -> Figure:
    r"""Each cluster's data in its own small panel, with lines drawn over it.

    One panel per level of ``group`` (a "trellis" or "facet" plot), on shared
    axes so that panels can be compared at a glance. Each panel shows that
    cluster's points and any number of lines, for example the single
    population line :math:`\hat\mu = \hat\alpha + \hat\beta x` in every panel,
    and each cluster's own line :math:`\hat\alpha_c + \hat\beta_c x`.

    Parameters
    ----------
    data : pandas.DataFrame
        Long-format data: one row per observation.
    x, y : str
        Columns for the horizontal and vertical axes.
    group : str
        Column naming the cluster of each row; one panel per cluster, in the
        order of its categories when it is categorical, else in order of
        first appearance (or as given by ``order``).
    lines : mapping of str to line, or a single line, optional
        The lines to draw, by legend label. A line is one of

        * a pair ``(intercept, slope)``: the same straight line in every
          panel (a population line);
        * a DataFrame indexed by cluster with two columns (intercept, slope):
          one straight line per cluster (clusters missing from its index get
          none);
        * an array of ``len(data)`` fitted values, one per row: drawn in each
          panel through that cluster's ``(x, fitted)`` points in order of
          ``x`` (for lines that are not straight, or any model's predictions).

        A single line that is not a mapping is labelled ``"fit"``.
    ncols : int, default 6
        Panels per row.
    order : sequence, optional
        The clusters to show and their order (e.g. a subset).
    points : bool, default True
        Draw the data points.
    styles : mapping of str to dict, optional
        Matplotlib keyword arguments per line label (``color``, ``ls``,
        ``lw``, ...), merged over the defaults: solid black for the first
        line, coloured dashed lines after it.
    xlabel, ylabel : str, optional
        Axis labels; default to ``x`` and ``y``.
    title : str, optional
        Figure title (it heads the legend when there is one).
    panel_size : (float, float), default (1.3, 1.15)
        Width and height of one panel, in inches.
    legend : bool, default True
        Add a figure legend when there are lines.
    point_style : dict, optional
        Matplotlib keyword arguments for the points.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    KeyError
        ``x``, ``y`` or ``group`` is not a column of ``data``.
    ValueError, TypeError
        A line is given in a form not listed above, or ``ncols < 1``.

    Examples
    --------
    >>> import mmbook
    >>> from mmbook.plots import facet_lines
    >>> sleep = mmbook.load_sleepstudy()
    >>> fit = mmbook.lm("Reaction ~ Days", sleep)
    >>> fig = facet_lines(sleep, "Days", "Reaction", "Subject",
    ...                   lines={"one line for all": tuple(fit.coef)})
    """
    missing = [c for c in (x, y, group) if c not in data.columns]
    if missing:
        raise KeyError(f"column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
                       f"not in data; its columns are: {', '.join(map(str, data.columns))}")
    if not isinstance(ncols, (int, np.integer)) or ncols < 1:
        raise ValueError(f"ncols must be a positive integer, not {ncols!r}")
    if lines is None:
        lines = {}
    elif not isinstance(lines, Mapping):
        lines = {"fit": lines}
    specs = {name: _classify(name, spec, data) for name, spec in lines.items()}
    style = {}
    for k, name in enumerate(specs):
        style[name] = {**_DEFAULT_STYLES[k % len(_DEFAULT_STYLES)], **dict((styles or {}).get(name, {}))}

    groups = _group_order(data, group, order)
    if not groups:
        raise ValueError(f"no clusters to draw: column {group!r} has no values"
                         + (" among those in 'order'" if order is not None else ""))
    ncols = min(int(ncols), len(groups))
    nrows = math.ceil(len(groups) / ncols)
    fig = Figure(figsize=(panel_size[0] * ncols + 0.5, panel_size[1] * nrows + 0.8),
                 layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)).ravel()

    xv = data[x].to_numpy(dtype=float)
    yv = data[y].to_numpy(dtype=float)
    codes = data[group].to_numpy()
    xgrid = np.linspace(np.nanmin(xv), np.nanmax(xv), 2)
    pstyle = {"s": 9, "color": "#3b6ea8", "alpha": 0.8, "lw": 0, **(point_style or {})}
    handles = {}

    for ax, g in zip(axes, groups):
        rows = codes == g
        if points:
            ax.scatter(xv[rows], yv[rows], **pstyle)
        for name, (kind, spec) in specs.items():
            if kind == "common":
                xs, ys = xgrid, spec[0] + spec[1] * xgrid
            elif kind == "per_group":
                if g not in spec.index:
                    continue
                a, b = spec.loc[g].to_numpy(dtype=float)
                xs, ys = xgrid, a + b * xgrid
            else:
                idx = np.argsort(xv[rows], kind="stable")
                xs, ys = xv[rows][idx], spec[rows][idx]
            (h,) = ax.plot(xs, ys, **style[name])
            handles[name] = h
        ax.set_title(str(g), fontsize=8.5, pad=4,
                     bbox={"boxstyle": "square,pad=0.15", "fc": "#e8e8e8", "ec": "none"})
        ax.tick_params(labelsize=8, length=2)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=3, steps=[1, 2, 2.5, 5, 10]))
    for ax in axes[len(groups):]:
        ax.set_visible(False)
    # tick labels on the outer panels only (the last filled panel of each column)
    for col in range(ncols):
        filled = [r for r in range(nrows) if r * ncols + col < len(groups)]
        axes[filled[-1] * ncols + col].xaxis.set_tick_params(labelbottom=True)
    fig.supxlabel(xlabel if xlabel is not None else x, fontsize=10)
    fig.supylabel(ylabel if ylabel is not None else y, fontsize=10)
    if legend and handles:  # the title heads the legend: a suptitle would collide with it
        fig.legend(list(handles.values()), list(handles), loc="outside upper center",
                   ncols=len(handles), fontsize=9, frameon=False, title=title,
                   title_fontproperties={"size": 10})
    elif title:
        fig.suptitle(title, fontsize=10)
    return fig


# ---------------------------------------------------------------------------
# diagnostic figures
# ---------------------------------------------------------------------------

_POINT = "#3b6ea8"
_LINE = "#d95f02"


def _check_fit(fit) -> None:
    needed = ("fitted", "residuals", "sigma", "ranef", "ranef_condvar")
    if not all(hasattr(fit, a) for a in needed):
        raise TypeError("expected a fitted model from mmbook.lmer (an LmerFit), "
                        f"got {type(fit).__name__}")


def _axes_or_new(ax, figsize):
    """The figure and axes to draw into: ``ax`` if given, else a new figure with one axes."""
    if ax is None:
        fig = Figure(figsize=figsize, layout="constrained")
        return fig, fig.subplots()
    return ax.figure, ax


def normal_quantiles(n: int) -> np.ndarray:
    r"""Expected positions of ``n`` sorted standard normal values, as R's ``qqnorm``.

    .. math:: x_i = \Phi^{-1}\!\left(\frac{i - a}{n + 1 - 2a}\right), \qquad
              a = 3/8 \text{ if } n \le 10 \text{ else } 1/2,

    R's ``ppoints(n)`` passed through the normal quantile function.

    Parameters
    ----------
    n : int
        Number of points, at least 1.

    Returns
    -------
    ndarray, shape (n,)
        Increasing normal quantiles.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, not {n!r}")
    a = 3.0 / 8.0 if n <= 10 else 0.5
    return stats.norm.ppf((np.arange(1, n + 1) - a) / (n + 1 - 2 * a))


def _qq(ax, values: np.ndarray, label: str | None = None) -> None:
    """Sorted values against normal quantiles, with R's ``qqline`` (through the quartiles)."""
    v = np.sort(np.asarray(values, dtype=float))
    x = normal_quantiles(len(v))
    ax.scatter(x, v, s=14, color=_POINT, lw=0, alpha=0.85, label=label)
    if len(v) >= 2:
        q1, q3 = np.quantile(v, [0.25, 0.75])          # R's quantile type 7, as qqline
        z1, z3 = stats.norm.ppf([0.25, 0.75])
        slope = (q3 - q1) / (z3 - z1)
        xs = np.array([x[0], x[-1]])
        ax.plot(xs, q1 + slope * (xs - z1), color=_LINE, lw=1.2)
    ax.set_xlabel("standard normal quantile")


def resid_fitted(fit, *, ax=None, scaled: bool = False, label: int = 0, label_by: str | None = None,
                 figsize: tuple[float, float] = (5.2, 3.8)) -> Figure:
    r"""Residuals against fitted values, lme4's ``plot(fit)``.

    Plots :math:`r_i = y_i - x_i^\top\hat\beta - z_i^\top\hat\gamma` against the
    conditional fitted values :math:`x_i^\top\hat\beta + z_i^\top\hat\gamma`
    (``fit.residuals`` against ``fit.fitted``), with a horizontal line at zero.
    A trend or a funnel shape says the mean or the variance model misses
    something.

    Parameters
    ----------
    fit : LmerFit
    ax : matplotlib.axes.Axes, optional
        Draw here instead of in a new figure.
    scaled : bool, default False
        Plot ``fit.scaled_residuals`` (residuals divided by :math:`\hat\sigma`,
        the "Scaled residuals" of lme4's summary) instead of the residuals.
    label : int, default 0
        Annotate this many points with the largest absolute residuals.
    label_by : str, optional
        A column of the fit's model frame whose value names a labelled point
        (e.g. the grouping factor); by default the row label of the data.
    figsize : (float, float)
        Size of a new figure, in inches.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    TypeError
        ``fit`` is not a fitted model.
    KeyError
        ``label_by`` is not a column of the model frame.
    ValueError
        ``label`` is negative.
    """
    _check_fit(fit)
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or label < 0:
        raise ValueError(f"label must be a non-negative integer, not {label!r}")
    frame = fit.mf.frame
    if label_by is not None and label_by not in frame.columns:
        raise KeyError(f"label_by={label_by!r} is not a column of the model frame; its columns are: "
                       f"{', '.join(map(str, frame.columns))}")
    fig, ax = _axes_or_new(ax, figsize)
    fitted = fit.fitted.to_numpy()
    resid = (fit.scaled_residuals if scaled else fit.residuals).to_numpy()
    ax.scatter(fitted, resid, s=12, color=_POINT, lw=0, alpha=0.8)
    ax.axhline(0.0, color="black", lw=0.8)
    for i in np.argsort(-np.abs(resid), kind="stable")[:label]:
        name = frame.index[i] if label_by is None else frame[label_by].iloc[i]
        ax.annotate(str(name), (fitted[i], resid[i]), xytext=(4, 2), textcoords="offset points",
                    fontsize=8)
    ax.set_xlabel("fitted value")
    ax.set_ylabel("scaled residual" if scaled else "residual")
    return fig


def qq_residuals(fit, *, ax=None, scaled: bool = True,
                 figsize: tuple[float, float] = (4.2, 3.8)) -> Figure:
    r"""Normal QQ plot of the residuals, R's ``qqnorm(resid(fit)); qqline(resid(fit))``.

    The sorted residuals against the expected positions of as many sorted
    standard normal values (:func:`normal_quantiles`), with the line through
    the quartiles. Points on a straight line mean normal-looking residuals;
    curvature at the ends means heavy or light tails.

    Parameters
    ----------
    fit : LmerFit
    ax : matplotlib.axes.Axes, optional
    scaled : bool, default True
        Plot residuals divided by :math:`\hat\sigma`, so that the vertical
        axis is in residual standard deviations.
    figsize : (float, float)

    Returns
    -------
    matplotlib.figure.Figure
    """
    _check_fit(fit)
    fig, ax = _axes_or_new(ax, figsize)
    _qq(ax, (fit.scaled_residuals if scaled else fit.residuals).to_numpy())
    ax.set_ylabel("scaled residual" if scaled else "residual")
    return fig


def _group(fit, group: str | None) -> str:
    groups = list(fit.ranef)
    if group is None:
        return groups[0]
    if group not in fit.ranef:
        raise KeyError(f"{group!r} is not a grouping factor of this fit; its grouping factors are: "
                       f"{', '.join(map(repr, groups))}")
    return group


def _condsd(fit, group: str) -> np.ndarray:
    """Conditional standard deviations of each level's random effects, shape (nlevels, q_total)."""
    cv = fit.ranef_condvar[group]
    blocks = cv if isinstance(cv, list) else [cv]
    return np.sqrt(np.hstack([np.einsum("lkk->lk", np.asarray(b)) for b in blocks]))


def _panels(fig, axes, k: int):
    """The figure and one axes per random effect: ``axes`` if given, else ``k`` new panels in ``fig``."""
    if axes is not None:
        axes = list(np.atleast_1d(axes).ravel())
        if len(axes) != k:
            raise ValueError(f"axes must hold {k} axes (one per random effect), got {len(axes)}")
        return axes[0].figure, axes
    return fig, list(np.atleast_1d(fig.subplots(1, k, squeeze=False)).ravel())


def qq_ranef(fit, group: str | None = None, *, axes=None, panel_size: tuple[float, float] = (3.6, 3.4)
             ) -> Figure:
    r"""Normal QQ plot of each random effect's conditional modes.

    One panel per column of ``fit.ranef[group]`` (for example the intercept
    and the slope): the sorted conditional modes :math:`\hat\gamma_{kc}` of
    the :math:`m` levels against :func:`normal_quantiles` ``(m)``, with the
    line through the quartiles.

    The conditional modes are shrunk towards zero, each by its own amount
    when clusters differ in size or design, so their spread is smaller than
    the estimated standard deviation and their distribution need not look
    normal even when the random effects are; with few clusters the plot can
    show gross departures (a far outlying cluster, strong skew) and little
    else.

    Parameters
    ----------
    fit : LmerFit
    group : str, optional
        Grouping factor; by default the first one.
    axes : sequence of matplotlib.axes.Axes, optional
        One axes per random effect of ``group``.
    panel_size : (float, float)

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    KeyError
        ``group`` is not a grouping factor of the fit.
    """
    _check_fit(fit)
    group = _group(fit, group)
    re = fit.ranef[group]
    k = re.shape[1]
    fig = None if axes is not None else Figure(figsize=(panel_size[0] * k, panel_size[1]),
                                               layout="constrained")
    fig, axs = _panels(fig, axes, k)
    for a, name in zip(axs, re.columns):
        _qq(a, re[name].to_numpy())
        a.set_ylabel(f"conditional mode, {name}")
        a.set_title(f"{group}: {name}", fontsize=10)
    return fig


def caterpillar(fit, group: str | None = None, *, level: float = 0.95, order: str | None = None,
                axes=None, panel_size: tuple[float, float] = (3.4, None)) -> Figure:
    r"""Caterpillar plot: each level's conditional modes with intervals.

    One panel per random effect of ``group``; one row per level, sorted by
    the conditional mode of the effect named by ``order``. Each point is
    :math:`\hat\gamma_{kc}` and its bar
    :math:`\hat\gamma_{kc} \pm z_{(1+\text{level})/2}\,\sqrt{V_{c,kk}}`, with
    :math:`V_c` the conditional covariance of level :math:`c`'s random
    effects given the data (``fit.ranef_condvar``, lme4's
    ``ranef(fit, condVar = TRUE)``); the picture of lme4's
    ``lattice::dotplot(ranef(fit, condVar = TRUE))``.

    The intervals hold :math:`\hat\beta`, :math:`\hat\sigma` and
    :math:`\hat\psi` fixed at their estimates, so they are somewhat too
    narrow, the more so the fewer the clusters.

    Parameters
    ----------
    fit : LmerFit
    group : str, optional
        Grouping factor; by default the first one.
    level : float, default 0.95
        Coverage of the normal intervals, in (0, 1).
    order : str, optional
        Random effect (column of ``fit.ranef[group]``) whose conditional
        modes sort the levels; by default the first.
    axes : sequence of matplotlib.axes.Axes, optional
        One axes per random effect.
    panel_size : (float, float or None)
        Width and height of one panel in inches; height ``None`` gives
        0.22 inch per level.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    KeyError
        ``group`` or ``order`` is not in the fit.
    ValueError
        ``level`` is not in (0, 1).
    """
    _check_fit(fit)
    if not (isinstance(level, (float, int, np.floating)) and 0 < level < 1):
        raise ValueError(f"level must be a number in (0, 1), not {level!r}")
    group = _group(fit, group)
    re = fit.ranef[group]
    if order is None:
        order = re.columns[0]
    elif order not in re.columns:
        raise KeyError(f"order={order!r} is not a random effect of {group!r}; they are: "
                       f"{', '.join(map(repr, re.columns))}")
    sd = _condsd(fit, group)
    z = stats.norm.ppf(0.5 + level / 2)
    rows = np.argsort(re[order].to_numpy(), kind="stable")
    k, m = re.shape[1], re.shape[0]
    height = panel_size[1] if panel_size[1] is not None else 0.22 * m + 0.9
    fig = None if axes is not None else Figure(figsize=(panel_size[0] * k, height),
                                               layout="constrained")
    fig, axs = _panels(fig, axes, k)
    pos = np.arange(m)
    labels = [str(x) for x in re.index[rows]]
    for j, (a, name) in enumerate(zip(axs, re.columns)):
        est = re[name].to_numpy()[rows]
        a.errorbar(est, pos, xerr=z * sd[rows, j], fmt="o", ms=4, color=_POINT, ecolor="0.55",
                   elinewidth=1.2, capsize=0)
        a.axvline(0.0, color="black", lw=0.8)
        a.set_yticks(pos, labels if j == 0 else [""] * m, fontsize=8)
        a.set_ylim(-0.7, m - 0.3)
        a.set_xlabel(f"{name}")
        a.set_title(f"{group}: {name}", fontsize=10)
    axs[0].set_ylabel(group)
    return fig


# ------------------------------------------------------------------ profiles (lme4's xyplot/densityplot of a profile)
# What profile_zeta and profile_density say alike about their layout, in their docstrings.
_PROFILE_LAYOUT_DOC = """ncols : int
        Panels per row.
    panel_size : (float, float)
        Width and height of a panel, in inches.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per parameter, ``ncols`` to a row.

    Raises
    ------
    TypeError
        ``prof`` is not a profile.
    ValueError
        ``ncols`` is not a positive integer."""


def _profile_doc(plot):
    """Put the layout parameters into a profile plot's docstring (which ``python -OO`` removes)."""
    if plot.__doc__:
        plot.__doc__ %= _PROFILE_LAYOUT_DOC
    return plot


def _check_profile(prof):
    if not (hasattr(prof, "frame") and hasattr(prof, "splines") and hasattr(prof, "names")):
        raise TypeError(f"expected a profile from mmbook.profile(fit), got {type(prof).__name__}")


def _profile_panels(prof, ncols, panel_size, sharey):
    """The figure and ``(axes, parameter name)`` pairs of a profile's panels, each titled like a lattice strip."""
    names = prof.names
    if not isinstance(ncols, (int, np.integer)) or ncols < 1:
        raise ValueError(f"ncols must be a positive integer, not {ncols!r}")
    ncols = min(int(ncols), len(names))
    nrows = math.ceil(len(names) / ncols)
    fig = Figure(figsize=(panel_size[0] * ncols + 0.4, panel_size[1] * nrows + 0.5), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, sharey=sharey, squeeze=False)).ravel()
    for ax in axes[len(names):]:
        ax.set_visible(False)
    for ax, nm in zip(axes, names):
        ax.set_title(nm, fontsize=9, pad=4, bbox={"boxstyle": "square,pad=0.15", "fc": "#e8e8e8", "ec": "none"})
        ax.tick_params(labelsize=8, length=2)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
    return fig, list(zip(axes, names))


@_profile_doc
def profile_zeta(prof, absolute: bool = False, levels=(0.5, 0.8, 0.9, 0.95, 0.99), ncols: int = 3,
                 panel_size: tuple[float, float] = (2.4, 2.0)) -> Figure:
    r"""Profile zeta plots, one panel per parameter (lme4's ``xyplot(profile(fit))``).

    Each panel shows the signed square root of the profiled deviance,
    :math:`\zeta(v)`, against the parameter's value: the profile points and
    the natural spline through them. A straight line means a quadratic
    log-likelihood, where Wald intervals are as good as profile intervals;
    curvature shows where they are not. Vertical segments mark the profile
    confidence limits at ``levels`` (where :math:`\zeta = \pm z_{(1+level)/2}`).

    Parameters
    ----------
    prof : mmbook.Profile
        From :func:`mmbook.profile` (or ``fit.profile()``).
    absolute : bool
        Plot :math:`|\zeta|` (lme4's ``absVal = TRUE``): the limits of each
        interval are then at the same height.
    levels : sequence of float
        Confidence levels whose limits are marked.
    %s
    """
    _check_profile(prof)
    fig, panels = _profile_panels(prof, ncols, panel_size, sharey=True)
    zs = stats.norm.ppf(0.5 + np.asarray(levels, dtype=float) / 2)
    for ax, nm in panels:
        sub = prof.frame[prof.frame[".par"] == nm]
        spl, (a, b) = prof.splines(nm)
        v = np.linspace(a, b, 200)
        z = spl(v)
        ax.plot(v, np.abs(z) if absolute else z, color="#3b6ea8", lw=1.3)
        zp = sub[".zeta"].to_numpy()
        ax.scatter(sub[".focal"], np.abs(zp) if absolute else zp, s=8, color="#3b6ea8", zorder=3)
        for zc in zs:
            for target in (-zc, zc):
                sign = np.sign(z - target)
                cross = np.flatnonzero(sign[:-1] * sign[1:] < 0)
                for i in cross:  # the limit, by linear interpolation between the spline's grid points
                    x = v[i] + (target - z[i]) * (v[i + 1] - v[i]) / (z[i + 1] - z[i])
                    ax.plot([x, x], [0.0, abs(target) if absolute else target], color="#888888", lw=0.8, ls=":")
        ax.axhline(0, color="#bbbbbb", lw=0.6)
    fig.supylabel(r"$|\zeta|$" if absolute else r"$\zeta$", fontsize=10)
    return fig


@_profile_doc
def profile_density(prof, npts: int = 201, upper: float = 0.999, ncols: int = 3,
                    panel_size: tuple[float, float] = (2.4, 2.0)) -> Figure:
    r"""Profile-based densities, one panel per parameter (lme4's ``densityplot(profile(fit))``).

    The density a parameter's estimator would have if :math:`\zeta` were
    exactly standard normal, :math:`\phi(\zeta(v))\,\zeta'(v)`
    (:meth:`mmbook.Profile.density`): symmetric when the profile is straight,
    skewed where it bends.

    Parameters
    ----------
    prof : mmbook.Profile
    npts : int
        Points per curve.
    upper : float
        Each curve spans :math:`\zeta` from ``-z_upper`` to ``z_upper``.
    %s
    """
    _check_profile(prof)
    dens = prof.density(npts=npts, upper=upper)
    fig, panels = _profile_panels(prof, ncols, panel_size, sharey=False)  # densities differ in scale
    for ax, nm in panels:
        sub = dens[dens["pnm"] == nm]
        ax.plot(sub["pval"], sub["density"], color="#3b6ea8", lw=1.3)
        ax.set_ylim(bottom=0)
    fig.supylabel("density", fontsize=10)
    return fig
