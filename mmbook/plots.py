"""Figures for the book. The only mmbook module that imports matplotlib.

Figures are built on :class:`matplotlib.figure.Figure` directly, not through
``pyplot``: nothing is left open in pyplot's global state, and a notebook
shows the returned figure once, as the value of its cell (with the inline
backend active, e.g. ``%matplotlib inline``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = ["facet_lines", "profile_zeta", "profile_density"]

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


# ------------------------------------------------------------------ profiles (lme4's xyplot/densityplot of a profile)
def _profile_axes(names, ncols, panel_size, sharey):
    if not isinstance(ncols, (int, np.integer)) or ncols < 1:
        raise ValueError(f"ncols must be a positive integer, not {ncols!r}")
    ncols = min(int(ncols), len(names))
    nrows = math.ceil(len(names) / ncols)
    fig = Figure(figsize=(panel_size[0] * ncols + 0.4, panel_size[1] * nrows + 0.5), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, sharey=sharey, squeeze=False)).ravel()
    for ax in axes[len(names):]:
        ax.set_visible(False)
    return fig, axes


def _check_profile(prof):
    if not (hasattr(prof, "frame") and hasattr(prof, "splines") and hasattr(prof, "names")):
        raise TypeError(f"expected a profile from mmbook.profile(fit), got {type(prof).__name__}")


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
    ncols : int
        Panels per row.
    panel_size : (float, float)
        Width and height of a panel, in inches.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    TypeError
        ``prof`` is not a profile.
    """
    _check_profile(prof)
    from scipy import stats

    fig, axes = _profile_axes(prof.names, ncols, panel_size, sharey=True)
    zs = stats.norm.ppf(0.5 + np.asarray(levels, dtype=float) / 2)
    for ax, nm in zip(axes, prof.names):
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
        ax.set_title(nm, fontsize=9, pad=4, bbox={"boxstyle": "square,pad=0.15", "fc": "#e8e8e8", "ec": "none"})
        ax.tick_params(labelsize=8, length=2)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
    fig.supylabel(r"$|\zeta|$" if absolute else r"$\zeta$", fontsize=10)
    return fig


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
    ncols : int
        Panels per row.
    panel_size : (float, float)
        Width and height of a panel, in inches.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    TypeError
        ``prof`` is not a profile.
    """
    _check_profile(prof)
    dens = prof.density(npts=npts, upper=upper)
    fig, axes = _profile_axes(prof.names, ncols, panel_size, sharey=False)  # densities differ in scale
    for ax, nm in zip(axes, prof.names):
        sub = dens[dens["pnm"] == nm]
        ax.plot(sub["pval"], sub["density"], color="#3b6ea8", lw=1.3)
        ax.set_title(nm, fontsize=9, pad=4, bbox={"boxstyle": "square,pad=0.15", "fc": "#e8e8e8", "ec": "none"})
        ax.tick_params(labelsize=8, length=2)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
        ax.set_ylim(bottom=0)
    fig.supylabel("density", fontsize=10)
    return fig
