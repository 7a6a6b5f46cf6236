"""Linear mixed models on data larger than memory: ``lmer`` on a Dask DataFrame.

For a Gaussian model everything the fit needs is a set of cross-products
that one pass over the rows can sum (Bates et al. 2015, section 3): per
level of the first grouping factor ``Z_1'Z_1`` and ``Z_1'[X y]``, the sparse
``Z_r'Z_1``, ``Z_r'Z_r`` and ``Z_r'[X y]`` of the other terms (one entry per
pair of levels that occur together), and ``[X y]'[X y]``
(:class:`mmbook.engine.pls.CrossProducts`). They add over disjoint sets of
rows, so Dask forms them partition by partition, sums them in a tree, and the
fit itself runs in memory on their sums, exactly as for a pandas frame: the
criterion is the same function of ``theta``, to rounding.

Two passes over the data:

1. the levels of every grouping factor and of every categorical column (on
   the complete rows, as ``model_frame`` drops rows with missing values);
2. the cross-products, with every partition's codes mapped to the global
   levels (R's order: sorted, or a categorical's own order).

Only ``y``, ``X`` and the grouping factors' levels are ever in memory in one
piece, never the rows. Fitted values, residuals and predictions come back as
Dask Series, computed when asked for.

Which models: Gaussian ``lmer`` (REML or ML) with single-column grouping
factors. An interaction or nested grouping factor (``(1 | a:b)``,
``(1 | a/b)``) needs a column made first (``ddf["ab"] = ddf.a + ":" + ddf.b``);
prior weights, offsets and contrasts other than R's defaults are not
supported here. A GLMM (``glmer``) cannot
take this path at all: each of its PIRLS iterations reweights the rows, so
it would read the data again at every step; it needs a pandas frame (a clear
``TypeError`` says so).

Schedulers: whatever Dask is set up with. The default for a Dask DataFrame
is the threaded scheduler; a ``distributed.Client`` (a ``LocalCluster`` on
one machine, or a cluster's scheduler address) becomes the default once
created, and the same call runs there::

    from distributed import Client, LocalCluster
    client = Client(LocalCluster(n_workers=4, threads_per_worker=1))
    ddf = dask.dataframe.read_parquet("ratings/*.parquet")
    fit = mmbook.lmer("y ~ x + (x | g)", ddf)
"""

from __future__ import annotations

import re
import time
import uuid
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .design import ModelFrame, RandomTerm, drop_rank_deficient, factor_codes, model_frame
from .modelmatrix import model_matrix
from .newdata import newdata_fixed
from .fit import LmerFit
from .formula import parse_formula
from .pls import PLS, CrossProducts, cross_products, moment_theta
from .report import summary_text
from .stages import check_control, fit_model

__all__ = ["is_dask_dataframe", "lmer_dask", "DaskLmerFit", "SummedPLS", "require_in_memory"]


def is_dask_dataframe(data) -> bool:
    """True for a ``dask.dataframe.DataFrame`` (checked without importing Dask)."""
    return type(data).__module__.split(".")[0] == "dask" and hasattr(data, "map_partitions") \
        and hasattr(data, "npartitions")


def require_in_memory(data, what: str) -> None:
    """Raise a clear ``TypeError`` when a Dask DataFrame reaches a function that needs the rows in memory.

    Raises
    ------
    TypeError
        ``data`` is a Dask DataFrame.
    """
    if is_dask_dataframe(data):
        raise TypeError(
            f"{what} needs the data in memory (a pandas DataFrame); a Dask DataFrame is supported only by "
            "mmbook.lmer (Gaussian linear mixed models, whose fit needs one pass of sums over the rows). "
            "Use ddf.compute() if the data fit in memory.")


# ------------------------------------------------------------------ the plan
@dataclass
class _Plan:
    """What every partition needs to turn its rows into global cross-products."""

    formula: str
    needed: list
    template: object  # a ModelFrame of a few rows holding every level: its specs build X and z for any rows
    term_specs: list  # per random term (formula order): the spec of its columns
    group_index: dict  # grouping column -> pd.Index of its values
    group_code: dict  # grouping column -> level code of each value in group_index
    nlevels: dict  # grouping column -> number of levels
    order: list  # formula positions of the random terms in lme4's order
    keep_cols: list | None = None  # positions of the X columns kept (rank deficiency), then y


def _complete(part: pd.DataFrame, needed) -> pd.DataFrame:
    part = part[needed]
    return part.loc[part.notna().all(axis=1).to_numpy()]


def _levels_partition(part: pd.DataFrame, needed, factor_cols):
    """Pass 1 on one partition: row counts and the distinct values of the factor columns."""
    full = part[needed]
    sub = _complete(full, needed)
    return {"n": len(sub), "n_all": len(full), "values": {c: pd.unique(sub[c]) for c in factor_cols}}


def _merge_levels(a, b):
    return {"n": a["n"] + b["n"], "n_all": a["n_all"] + b["n_all"],
            "values": {c: pd.unique(np.concatenate([np.asarray(a["values"][c], dtype=object),
                                                    np.asarray(b["values"][c], dtype=object)]))
                       for c in a["values"]}}


def _partition_design(part: pd.DataFrame, plan: _Plan):
    """One partition's ``X``, ``y`` and random-effects terms on the global levels (None: no complete rows)."""
    sub = _complete(part, plan.needed)
    if len(sub) == 0:
        return None
    f = parse_formula(plan.formula)
    X = _fixed_matrix(sub, plan)
    y = _response(sub, f)
    terms = []
    for bar, spec in zip(f.random, plan.term_specs):
        g = bar.group_vars[0]
        pos = plan.group_index[g].get_indexer(sub[g])
        if np.any(pos < 0):
            raise ValueError(f"grouping factor {g!r} has values that were not seen when its levels were found")
        z, cnames = model_matrix(spec, sub, f"random-effects model matrix of ({bar.text})")
        terms.append(RandomTerm(bar=bar, group=g, refs=plan.group_code[g][pos], levels=range(plan.nlevels[g]),
                                z=z, cnames=cnames))
    return X, y, [terms[i] for i in plan.order]


def _fixed_matrix(sub, plan):
    X, _ = newdata_fixed(plan.template, sub)
    return X if plan.keep_cols is None else X[:, plan.keep_cols]


def _response(sub, f):
    if f.response in sub.columns:
        return sub[f.response].to_numpy(dtype=float)
    return model_matrix(f"0 + {f.response}", sub, "response")[0][:, 0]


def _cross_products_partition(part: pd.DataFrame, plan: _Plan):
    """Pass 2 on one partition: its cross-products and what the fit needs to know of its columns."""
    d = _partition_design(part, plan)
    if d is None:
        return None
    X, y, terms = d
    cp = cross_products(terms, X, y)
    return {"cp": cp, "n": len(y), "xnames": list(plan.template.xnames), "cnames": [t.cnames for t in terms],
            "icpt": [bool(np.all(t.z[:, 0] == 1.0)) for t in terms], "ysum": float(y.sum())}


def _merge_cross_products(a, b):
    if a is None:
        return b
    if b is None:
        return a
    if a["xnames"] != b["xnames"] or a["cnames"] != b["cnames"]:
        raise ValueError("the partitions of the data give different model matrices (columns "
                         f"{a['xnames']} and {b['xnames']}); make the factor columns categorical with the "
                         "same categories in every partition")
    return {"cp": a["cp"] + b["cp"], "n": a["n"] + b["n"], "xnames": a["xnames"], "cnames": a["cnames"],
            "icpt": [x and y for x, y in zip(a["icpt"], b["icpt"])], "ysum": a["ysum"] + b["ysum"]}


def _tree(delayed_parts, merge, fan_in: int = 8):
    """Sum delayed partials in a tree (bounded memory: at most ``fan_in`` partials per node)."""
    import dask

    fold = dask.delayed(_fold, pure=True)
    level = list(delayed_parts)
    while len(level) > 1:
        level = [fold(merge, *level[i:i + fan_in]) for i in range(0, len(level), fan_in)]
    return level[0]


def _fold(merge, *xs):
    out = xs[0]
    for x in xs[1:]:
        out = merge(out, x)
    return out


def _mentions(text: str, name: str) -> bool:
    return re.search(r"(?<![\w.])" + re.escape(name) + r"(?![\w.])", text) is not None


# ------------------------------------------------------------------ the fit
def lmer_dask(formula: str, ddf, REML: bool = True, control=None, start=None) -> "DaskLmerFit":
    """Fit a Gaussian linear mixed model to a Dask DataFrame (see the module docstring).

    Parameters
    ----------
    formula : str
        An lme4 formula whose grouping factors are single columns.
    ddf : dask.dataframe.DataFrame
    REML, control, start
        As for :func:`mmbook.lmer`.

    Returns
    -------
    DaskLmerFit
        An :class:`~mmbook.engine.fit.LmerFit` whose ``fitted``, ``residuals`` and ``predict`` are
        Dask Series.

    Raises
    ------
    ValueError
        An interaction or nested grouping factor; no complete rows; lme4's checks on the
        grouping factors.
    KeyError
        A variable is not a column of ``ddf``.
    """
    import dask

    control = check_control(control)
    f = parse_formula(formula)
    if not f.random:
        raise ValueError(f"no random-effects terms in {formula!r}: add one such as (1 | group)")
    for bar in f.random:
        if len(bar.group_vars) != 1 or bar.group.strip("() ") != bar.group_vars[0]:
            raise ValueError(
                f"the Dask path takes grouping factors that are single columns; ({bar.text}) groups by "
                f"{bar.group!r}: add that column first, e.g. ddf['ab'] = ddf['a'].astype(str) + ':' + "
                "ddf['b'].astype(str), and group by it")
    if re.search(r"(?<![\w.])(scale|poly|bs)\s*\(", formula):
        raise NotImplementedError("scale(), poly() and bs() learn their transformation from all the rows; on a "
                                  "Dask DataFrame compute the transformed column first and use it in the formula")
    # the columns model_frame uses, and its checks (names, the response's type), on the first rows
    head = ddf.head(500, npartitions=min(ddf.npartitions, 4))
    head_full = head if len(head) else ddf._meta
    needed = _formula_columns(f, ddf)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            needed = list(model_frame(f, head_full, random=False).frame.columns)
    except ValueError:  # no complete rows among the first ones: the regex list of names stands
        pass
    group_vars = list(dict.fromkeys(b.group_vars[0] for b in f.random))
    dtypes = ddf.dtypes
    other_text = f.fixed + " " + " ".join(b.expr for b in f.random)
    factor_cols = [c for c in needed if c != f.response and (
        c in group_vars or not pd.api.types.is_numeric_dtype(dtypes[c]) or pd.api.types.is_bool_dtype(dtypes[c])
        or re.search(r"(factor|ordered)\s*\(\s*" + re.escape(str(c)) + r"\s*\)", formula))]

    # pass 1: levels
    clock = [time.perf_counter()]
    parts = ddf.to_delayed()
    lev = dask.delayed(_levels_partition, pure=True)
    found = _tree([lev(p, needed, factor_cols) for p in parts], _merge_levels).compute()
    if found["n"] == 0:
        raise ValueError("no complete rows: every row has a missing value in a variable the formula uses")
    n_dropped = found["n_all"] - found["n"]
    clock.append(time.perf_counter())

    group_index, group_code, nlevels, levels, ordered_values = {}, {}, {}, {}, {}
    for c in factor_cols:
        values = pd.Series(found["values"][c])
        dt = dtypes[c]
        if (isinstance(dt, pd.CategoricalDtype) and not _unknown_categories(dt)) or \
                pd.api.types.is_numeric_dtype(dt) or pd.api.types.is_bool_dtype(dt):
            values = values.astype(dt)
        codes, labels = factor_codes(pd.DataFrame({c: values}), c)
        ordered_values[c] = values.iloc[np.argsort(codes, kind="stable")].reset_index(drop=True)
        if c in group_vars:
            group_index[c] = pd.Index(values.to_numpy())
            group_code[c] = codes
            nlevels[c] = len(labels)
            levels[c] = labels
    template = _template_frame(head_full, needed, ordered_values, [c for c in factor_cols if
                                                                  c not in group_vars or _mentions(other_text, c)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tmf = model_frame(f, template, random=False, drop_rank=False)
    term_specs = [model_matrix(b.expr, tmf.frame, f"random-effects model matrix of ({b.text})", with_spec=True)[2]
                  for b in f.random]
    nl = np.array([nlevels[b.group_vars[0]] for b in f.random])
    order = list(range(len(f.random)))
    if len(order) > 1 and np.any(np.diff(nl) > 0):
        order = [int(i) for i in np.argsort(nl, kind="stable")[::-1]]
    plan = _Plan(formula=formula, needed=needed, template=tmf, term_specs=term_specs, group_index=group_index,
                 group_code=group_code, nlevels=nlevels, order=order)

    # pass 2: cross-products
    plan_d = dask.delayed(plan, name=f"mmbook-plan-{uuid.uuid4().hex}")
    cpp = dask.delayed(_cross_products_partition, pure=True)
    tot = _tree([cpp(p, plan_d) for p in parts], _merge_cross_products).compute()
    clock.append(time.perf_counter())
    n = tot["n"]
    if n_dropped:
        warnings.warn(f"{n_dropped} row{'s' if n_dropped > 1 else ''} with missing values removed "
                      f"(of {found['n_all']})", UserWarning, stacklevel=3)
    cp, xnames = tot["cp"], tot["xnames"]
    # rank deficiency on X'X as lme4 does on X: any B with B'B = X'X has the same Gram-Schmidt
    p = len(xnames)
    dropped_cols = []
    if p:
        evals, evecs = np.linalg.eigh(cp.Axyxy[:p, :p])
        B = np.sqrt(np.clip(evals, 0, None))[:, None] * evecs.T
        _, kept, dropped_cols = drop_rank_deficient(B, list(xnames))
        if dropped_cols:
            k = len(dropped_cols)
            warnings.warn(f"fixed-effect model matrix is rank deficient so dropping {k} column"
                          f"{'s' if k > 1 else ''} / coefficient{'s' if k > 1 else ''} "
                          f"({', '.join(dropped_cols)})", UserWarning, stacklevel=3)
            keep = [xnames.index(c) for c in kept] + [p]
            cp = _select_columns(cp, np.array(keep))
            xnames = kept
            plan.keep_cols = keep[:-1]
    terms_formula_order = []
    for j, bar in enumerate(f.random):
        g = bar.group_vars[0]
        q = len(tot["cnames"][order.index(j)])
        terms_formula_order.append(RandomTerm(bar=bar, group=g, refs=np.zeros(0, dtype=np.int64), levels=levels[g],
                                              z=np.zeros((0, q)), cnames=tot["cnames"][order.index(j)]))
    terms = [terms_formula_order[i] for i in order]
    _check_terms(terms, n)
    mf = SummedModelFrame(formula=f, frame=head_full.iloc[:0][needed], y=np.zeros(0), X=np.zeros((0, len(xnames))),
                          xnames=list(xnames), terms=terms, n_dropped=n_dropped, dropped_columns=dropped_cols,
                          nobs=n)
    pls = SummedPLS(mf, cp, REML=REML, icpt=tot["icpt"], ysum=tot["ysum"])
    fit = fit_model(mf, fit_class=DaskLmerFit, REML=REML, control=control, start=start, data=ddf, pls=pls,
                    stacklevel=4)
    fit.plan = plan
    clock.append(time.perf_counter())
    fit.timings = dict(zip(("levels_s", "cross_products_s", "fit_s"), np.diff(clock).tolist()))
    return fit


def _template_frame(head, needed, ordered_values, factor_cols):
    """A few rows in which every level of every factor occurs: the model matrices' specs learn the levels.

    Numeric columns take the first rows' values (only the columns' classes matter to the specs);
    grouping-only columns repeat one level.
    """
    m = max([2] + [len(ordered_values[c]) for c in factor_cols])
    complete = head[needed].dropna()
    cols = {}
    for c in needed:
        if c in factor_cols:
            vals = ordered_values[c]
            cols[c] = pd.Series(np.resize(np.arange(len(vals)), m)).map(vals).astype(vals.dtype)
        elif c in ordered_values:
            cols[c] = pd.Series([ordered_values[c].iloc[0]] * m).astype(ordered_values[c].dtype)
        else:
            base = complete[c].to_numpy() if len(complete) else np.zeros(1)
            cols[c] = pd.Series(np.resize(base, m) if len(base) else np.zeros(m)).astype(head[c].dtype)
    return pd.DataFrame(cols)


def _unknown_categories(dt) -> bool:
    cats = getattr(dt, "categories", None)
    return cats is None or (len(cats) == 1 and str(cats[0]) == "__UNKNOWN_CATEGORIES__")


def _formula_columns(f, ddf) -> list:
    """The data columns a parsed formula refers to (by name, in the data's column order)."""
    text = " ".join([f.response, f.fixed] + [b.expr + " " + b.group for b in f.random])
    return [c for c in ddf.columns if _mentions(text, str(c))]


def _select_columns(cp: CrossProducts, keep: np.ndarray) -> CrossProducts:
    return CrossProducts(cp.A11, cp.A1xy[:, keep, :], cp.Axyxy[np.ix_(keep, keep)], cp.Ar1, cp.Arr,
                         None if cp.Arxy is None else cp.Arxy[:, keep])


def _check_terms(terms, n):
    """lme4's checks on the grouping factors (as :func:`mmbook.engine.design.random_terms`)."""
    for t in terms:
        if t.nlevels < 2:
            raise ValueError(f"grouping factor {t.group!r} has {t.nlevels} level: grouping factors "
                             "must have > 1 sampled level")
        if t.nlevels >= n:
            raise ValueError("number of levels of each grouping factor must be < number of observations "
                             f"(problems: {t.group})")
        if t.nlevels * t.q >= n:
            raise ValueError(f"number of observations (={n}) <= number of random effects (={t.nlevels * t.q}) "
                             f"for term ({t.bar.text}); the random-effects parameters and the residual "
                             "variance are probably unidentifiable")


@dataclass
class SummedModelFrame(ModelFrame):
    """A model frame known by its size, columns and levels only: the rows stay in the Dask DataFrame."""

    nobs: int = 0

    @property
    def n(self) -> int:
        return self.nobs

    @property
    def p(self) -> int:
        return len(self.xnames)


class SummedPLS(PLS):
    """A :class:`~mmbook.engine.pls.PLS` built from summed cross-products instead of rows.

    Parameters
    ----------
    mf : SummedModelFrame
    cp : CrossProducts
    REML : bool
    icpt : list of bool
        Per term: is its first column the constant 1 (for the moment start)?
    ysum : float
        Sum of ``y``.
    """

    def __init__(self, mf, cp: CrossProducts, REML: bool = True, icpt=None, ysum: float = 0.0):
        self.mf = mf
        self._cp = cp
        self._icpt = list(icpt) if icpt is not None else [False] * len(mf.terms)
        self._ysum = ysum
        super().__init__(mf, REML=REML)

    def reweight(self, sqrtw=None, y=None) -> "SummedPLS":
        """Install the summed cross-products (weights and a new response would need the rows again)."""
        if sqrtw is not None or y is not None:
            raise NotImplementedError("a fit from a Dask DataFrame cannot be reweighted or given a new response: "
                                      "that needs the rows again")
        self.sqrtw = None
        return self.set_cross_products(self._cp)

    def cross_products(self) -> CrossProducts:
        return self._cp

    # The interface of mmbook.engine.conditioning.ConditionedPLS, with the identity map: a model
    # built from sums is fitted in its own units (the column moments the conditioning would need
    # are not kept), so the optimizer's parameters are lme4's theta.
    offset = 0.0

    @property
    def inner(self) -> "SummedPLS":
        return self

    def theta_of(self, par: np.ndarray) -> np.ndarray:
        return np.array(par, dtype=float)

    def par_of(self, theta: np.ndarray) -> np.ndarray:
        return np.array(theta, dtype=float)

    def start_par(self) -> np.ndarray:
        return self.moment_start()

    def objective_par(self, par: np.ndarray) -> float:
        par = np.asarray(par, dtype=float)
        if not np.all(np.isfinite(par)):
            return np.inf
        with np.errstate(all="ignore"):
            v = self.objective(par)
        return v if np.isfinite(v) else np.inf

    def with_REML(self, REML: bool) -> "SummedPLS":
        return SummedPLS(self.mf, self._cp, REML=REML, icpt=self._icpt, ysum=self._ysum)

    def moment_start(self) -> np.ndarray:
        """:meth:`PLS.moment_start` from the cross-products (OLS residuals' level sums and moments)."""
        theta = self.theta0.copy()
        icpt = [k for k, t in enumerate(self.terms) if t.q == 1 and self._icpt[k]]
        if not icpt:
            return theta
        p, n = self.p, self.n
        XtX, Xty, yty = self.Axyxy[:p, :p], self.Axyxy[:p, p], self.Axyxy[p, p]
        beta = np.linalg.lstsq(XtX, Xty, rcond=None)[0] if p else np.zeros(0)
        rr = yty - 2 * beta @ Xty + beta @ XtX @ beta
        counts, sums = {}, {}
        off = 0
        for k, t in enumerate(self.terms):
            if k == 0:
                c, s = self.A11[0, 0], self.A1xy[0, p] - beta @ self.A1xy[0, :p]
            else:
                idx = slice(off, off + t.nlevels * t.q)
                c = np.diagonal(self.Arr)[idx]
                s = self.Arxy[idx, p] - self.Arxy[idx, :p] @ beta
                off += t.nlevels * t.q
            if k in icpt:
                counts[k], sums[k] = np.maximum(c, 1), s
        total_sum = sums[icpt[0]].sum()
        total = rr / n - (total_sum / n) ** 2
        means = {k: sums[k] / counts[k] for k in icpt}
        if not p:  # without X the residuals are y less its mean, as PLS takes them
            means = {k: m - total_sum / n for k, m in means.items()}
        return moment_theta(theta, self.theta_offsets, total, counts, means, self.moment_cross(icpt), self.p)


def _predict_partition(part: pd.DataFrame, plan: _Plan, beta, b, terms_use, allow_new_levels, what):
    """Per partition: ``X beta (+ Z b)``, or the residuals ``y - X beta - Z b``."""
    sub = _complete(part, plan.needed) if what in ("fitted", "residuals") else part
    out_index = sub.index
    if len(sub) == 0:
        return pd.Series(np.zeros(0), index=out_index, name=what)
    f = parse_formula(plan.formula)
    X = _fixed_matrix(sub, plan)
    eta = X @ beta
    if terms_use:
        for j, bar in enumerate(f.random):
            g = bar.group_vars[0]
            pos = plan.group_index[g].get_indexer(sub[g])
            new = pos < 0
            if new.any() and not allow_new_levels:
                raise ValueError(f"new levels of grouping factor {g!r} in the data to predict for; "
                                 "use allow_new_levels=True to give them random effects of zero")
            codes = np.where(new, 0, plan.group_code[g][np.maximum(pos, 0)])
            z, _ = model_matrix(plan.term_specs[j], sub, f"random-effects model matrix of ({bar.text})")
            bk = b[plan.order.index(j)]  # (nlevels, q)
            contrib = np.einsum("nq,nq->n", z, bk[codes])
            eta = eta + np.where(new, 0.0, contrib)
    if what == "residuals":
        return pd.Series(_response(sub, f) - eta, index=out_index, name=what)
    return pd.Series(eta, index=out_index, name=what)


@dataclass(eq=False)
class DaskLmerFit(LmerFit):
    """A fit from a Dask DataFrame: :class:`~mmbook.engine.fit.LmerFit` whose row-wise results are Dask Series.

    Everything computed from the cross-products (``fixef``, ``vcov``, ``sigma``, ``theta``,
    ``varcorr``, ``ranef``, ``ranef_condvar``, ``coef``, ``loglik``, ``aic``, ``summary``,
    ``tidy``, ``glance``, Wald ``confint``, ``refit_ml``, ``Lambda``, ``L``, ``RX``, ``u``, ``b``)
    works as for a pandas fit. ``fitted``, ``residuals``, ``scaled_residuals`` and ``predict``
    return Dask Series (call ``.compute()``). What needs the rows again (the model matrices ``X``,
    ``Z``, ``y``; profile and bootstrap intervals, ``anova``, ``drop1``, ``update``,
    ``simulate``) raises ``NotImplementedError``.
    """

    plan: object = None
    timings: dict = field(default_factory=dict)  # wall seconds: the two passes over the data and the fit

    def _rows(self, what, newdata=None, re_form="all", allow_new_levels=False):
        beta = np.asarray(self.beta)
        if isinstance(re_form, float) and np.isnan(re_form):
            re_form = None
        if re_form not in ("all", None, "NA", "~0"):
            raise NotImplementedError("a Dask fit predicts with all random effects (re_form='all') or none "
                                      "(re_form=None)")
        use = re_form == "all"
        b = [np.asarray(g) for g in self.gamma]
        data = self.data if newdata is None else newdata
        if not is_dask_dataframe(data):
            return _predict_partition(pd.DataFrame(data), self.plan, beta, b, use, allow_new_levels, what)
        meta = pd.Series(np.zeros(0), name=what, dtype=float)
        return data.map_partitions(_predict_partition, self.plan, beta, b, use, allow_new_levels, what, meta=meta)

    @property
    def fitted(self):
        """``X beta + Z b`` for the rows used in the fit: a Dask Series."""
        return self._rows("fitted")

    @property
    def residuals(self):
        """``y - X beta - Z b``: a Dask Series."""
        return self._rows("residuals")

    @property
    def scaled_residuals(self):
        return self.residuals / self.sigma

    def predict(self, newdata=None, re_form="all", allow_new_levels: bool = False):
        """Predictions (a Dask Series for Dask ``newdata`` or none; a pandas Series for a pandas frame)."""
        return self._rows("predicted", newdata, re_form, allow_new_levels)

    def summary(self) -> str:
        """lme4's summary. The scaled residuals' quartiles are Dask's (approximate) quantiles; min and max are exact."""
        import dask

        r = self.scaled_residuals
        lo, hi, q = dask.compute(r.min(), r.max(), r.quantile([0.25, 0.5, 0.75]))
        return summary_text(_WithQuantiles(self, np.array([lo, *np.asarray(q), hi])))

    def refit_ml(self, warn: bool = True) -> "DaskLmerFit":
        if not self.REML:
            return self
        pls = self.pls.with_REML(False)
        fit = fit_model(self.mf, fit_class=type(self), REML=False, control=self.control, start=self.opt.theta,
                        data=self.data, warn=warn, pls=pls, stacklevel=3)
        fit.plan = self.plan
        return fit

    def _needs_rows(self, *args, **kwargs):
        raise NotImplementedError("this needs the rows in memory: a fit from a Dask DataFrame supports the "
                                  "estimates, Wald intervals, fitted values, residuals and predictions (compute "
                                  "the frame and fit it with pandas for the rest)")

    update = simulate = profile = anova = drop1 = resid = _needs_rows
    X = y = Z = Zt = flist = mu = property(_needs_rows)

    def confint(self, method: str = "profile", level: float = 0.95, parm=None, **kwargs):
        """Wald intervals; profile (lme4's default) and bootstrap intervals need the rows in memory.

        Raises
        ------
        NotImplementedError
            ``method`` is not ``"Wald"``.
        """
        if method != "Wald":
            raise NotImplementedError(f"confint(method={method!r}) needs the rows in memory; a fit from a Dask "
                                      "DataFrame gives confint(method='Wald')")
        return super().confint(method=method, level=level, parm=parm, **kwargs)


class _WithQuantiles:
    """The fit as :func:`summary_text` reads it, with precomputed residual quantiles."""

    def __init__(self, fit, q):
        self._fit, self._q = fit, q

    def __getattr__(self, name):
        return getattr(self._fit, name)

    @property
    def scaled_residuals(self):
        return pd.Series(self._q)
