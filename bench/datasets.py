"""Benchmark data sets: seeded generators and the list of cases.

Every simulated set is drawn with ``np.random.default_rng(seed)`` from a fixed
seed, so a case is the same data on every machine and in every process (the
runner regenerates a set in each subprocess instead of shipping it around).

Group labels are strings (``"g000042"``), as a user's data would have them.
Rows are ordered by the first grouping factor, as longitudinal data usually
are (lme4's sleepstudy and InstEval are stored that way); the other factors
of a crossed design are in random order within it. This is the kinder
layout for lme4: with the 1M-row set in random row order, each of its
sparse Cholesky updates took 2.5 times as long (0.35 s against 0.13 s of
CPU time), while mmbook's whole fit took about a fifth longer. Every level of every grouping
factor occurs at least once (so the number of groups is exact), and group
sizes are unbalanced.

The models follow

.. math::

    y_i = \\beta_0 + \\beta_1 x_i + \\gamma_{0,g[i]} + \\gamma_{1,g[i]} x_i
          + \\varepsilon_i,\\qquad
    \\gamma_g \\sim N(0, \\psi),\\quad \\varepsilon_i \\sim N(0, \\sigma^2)

for one grouping factor ``(x|g)`` (random-intercept SD 1.0, slope SD 0.7,
correlation 0.3, residual SD 1.0), and sums of independent random intercepts
for the crossed designs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

__all__ = ["Case", "CASES", "make"]


@dataclass(frozen=True)
class Case:
    """One benchmark case: a data generator and the model fitted to it.

    Attributes
    ----------
    name : str
        Short key used on the command line (``--cases``).
    formula : str
        lme4 formula fitted by every tool.
    make : callable
        ``make() -> pandas.DataFrame``; deterministic.
    rows, groups : int
        Size of the data: rows, and levels of each grouping factor.
    runs_mmbook, runs_lme4, runs_sm : int
        How many timed fits of each tool (the median is reported).
    family : str
        ``"gaussian"`` (``lmer``) or a GLMM family, ``"binomial"`` (``glmer``;
        the criterion compared is then the Laplace deviance, ``-2 logLik``).
    sm : str
        How statsmodels fits it: ``"groups"`` (one grouping factor),
        ``"vc"`` (crossed, variance components under one all-ones group)
        or ``"skip: <reason>"``.
    big : bool
        Skipped by ``--quick`` (and statsmodels is skipped on it).
    """

    name: str
    label: str
    formula: str
    make: Callable[[], pd.DataFrame]
    rows: int
    groups: dict
    runs_mmbook: int = 5
    runs_lme4: int = 5
    runs_sm: int = 3
    sm: str = "groups"
    big: bool = False
    group_cols: tuple = ("g",)
    family: str = "gaussian"


# ---------------------------------------------------------------- helpers
def labels(prefix: str, n: int) -> np.ndarray:
    """String labels ``prefix + zero-padded index`` as an object array."""
    width = len(str(n - 1))
    return np.array([f"{prefix}{i:0{width}d}" for i in range(n)], dtype=object)


def covering_codes(rng: np.random.Generator, n_rows: int, n_levels: int,
                   weights: np.ndarray | None = None, min_size: int = 2,
                   ordered: bool = False) -> np.ndarray:
    """Group index per row: every level ``min_size`` times, the rest drawn at random.

    With ``weights`` the remaining rows are drawn with those probabilities
    (unbalanced groups); otherwise uniformly (group sizes ~ Poisson). Rows
    come sorted by group if ``ordered``, otherwise in random order.
    """
    base = np.tile(np.arange(n_levels, dtype=np.int64), min_size)
    n_rest = n_rows - base.size
    if n_rest < 0:
        raise ValueError(f"{n_rows} rows cannot hold {n_levels} levels {min_size} times each")
    if weights is None:
        rest = rng.integers(0, n_levels, n_rest)
    else:
        rest = rng.choice(n_levels, size=n_rest, p=weights / weights.sum())
    codes = np.concatenate([base, rest])
    if ordered:
        codes.sort()
    else:
        rng.shuffle(codes)
    return codes


def frame(columns: dict) -> pd.DataFrame:
    """A DataFrame whose group columns are string columns (pandas' ``str`` dtype)."""
    return pd.DataFrame(columns)


# ---------------------------------------------------------------- generators
def sleepstudy() -> pd.DataFrame:
    """lme4's sleepstudy (180 rows, 18 subjects), from ``mmbook.load_sleepstudy``.

    The subject column is turned into plain strings (the loader returns a
    categorical), like every other case.
    """
    import mmbook

    df = mmbook.load_sleepstudy()
    df["Subject"] = df["Subject"].astype(str)
    return df


def slopes(n_rows: int, n_groups: int, seed: int) -> pd.DataFrame:
    """``y ~ x + (x|g)`` data: correlated random intercepts and slopes.

    beta = (10, 2); SD(intercept) = 1.0, SD(slope) = 0.7, correlation 0.3;
    sigma = 1.0; x ~ N(1, 1) (not centred, as predictors in real data are not).
    """
    rng = np.random.default_rng(seed)
    g = covering_codes(rng, n_rows, n_groups, ordered=True)
    sd = np.array([1.0, 0.7])
    corr = np.array([[1.0, 0.3], [0.3, 1.0]])
    psi = corr * np.outer(sd, sd)
    gamma = rng.multivariate_normal(np.zeros(2), psi, size=n_groups)
    x = rng.normal(1.0, 1.0, n_rows)
    y = 10.0 + 2.0 * x + gamma[g, 0] + gamma[g, 1] * x + rng.normal(0.0, 1.0, n_rows)
    return frame({"y": y, "x": x, "g": labels("g", n_groups)[g]})


def crossed(n_rows: int, n_a: int, n_b: int, seed: int) -> pd.DataFrame:
    """``y ~ x + (1|a) + (1|b)`` data: two crossed random intercepts.

    beta = (5, 1); SD(a) = 1.0, SD(b) = 0.8, sigma = 1.0; x ~ N(0, 1).
    Levels are crossed at random (about 18 % of the 2,000 x 500 cells filled);
    rows are sorted by ``a``.
    """
    rng = np.random.default_rng(seed)
    a = covering_codes(rng, n_rows, n_a, ordered=True)
    b = covering_codes(rng, n_rows, n_b)
    ga = rng.normal(0.0, 1.0, n_a)
    gb = rng.normal(0.0, 0.8, n_b)
    x = rng.normal(0.0, 1.0, n_rows)
    y = 5.0 + 1.0 * x + ga[a] + gb[b] + rng.normal(0.0, 1.0, n_rows)
    return frame({"y": y, "x": x, "a": labels("a", n_a)[a], "b": labels("b", n_b)[b]})


def insteval_like(seed: int = 20240305) -> pd.DataFrame:
    """An InstEval-shaped design: ``y ~ x + (1|s) + (1|d) + (1|dept)``.

    lme4's InstEval has 73,421 ratings of 1,128 lecturers (``d``) by 2,972
    students (``s``) in 14 departments. Here: the same counts; lecturers
    are nested in departments (each lecturer belongs to one department);
    students give 2 to ~140 ratings (median ~20) and lecturers receive very
    unequal numbers of ratings (3 to ~700; log-normal popularity), as in the
    real data; rows are sorted by student, as InstEval's are. Variance
    components are of InstEval's size: SD(s) = 0.32, SD(d) = 0.52,
    SD(dept) = 0.08, sigma = 1.18; beta = (3.2, 0.1) with x ~ N(0, 1).
    The response is continuous (InstEval's is a 1-5 rating).
    """
    rng = np.random.default_rng(seed)
    n_rows, n_s, n_d, n_dept = 73_421, 2_972, 1_128, 14
    s = covering_codes(rng, n_rows, n_s, weights=rng.gamma(2.0, 1.0, n_s), ordered=True)
    d = covering_codes(rng, n_rows, n_d, weights=rng.lognormal(0.0, 1.0, n_d))
    dept_of_d = np.concatenate([np.arange(n_dept), rng.integers(0, n_dept, n_d - n_dept)])
    rng.shuffle(dept_of_d)
    dept = dept_of_d[d]
    gs = rng.normal(0.0, 0.32, n_s)
    gd = rng.normal(0.0, 0.52, n_d)
    gdept = rng.normal(0.0, 0.08, n_dept)
    x = rng.normal(0.0, 1.0, n_rows)
    y = 3.2 + 0.1 * x + gs[s] + gd[d] + gdept[dept] + rng.normal(0.0, 1.18, n_rows)
    return frame({"y": y, "x": x, "s": labels("s", n_s)[s], "d": labels("d", n_d)[d],
                  "dept": labels("dept", n_dept)[dept]})


def binary_slopes(n_rows: int, n_groups: int, seed: int) -> pd.DataFrame:
    """``y ~ x + (x|g)`` binary data for ``glmer(family = binomial)``.

    logit P(y = 1) = beta_0 + beta_1 x + b_0g + b_1g x with beta = (-0.5, 1.0),
    SD(b_0) = 1.0, SD(b_1) = 0.5, correlation 0.3; x ~ N(0, 1); rows sorted by group.
    """
    rng = np.random.default_rng(seed)
    g = covering_codes(rng, n_rows, n_groups, ordered=True)
    sd = np.array([1.0, 0.5])
    psi = np.array([[1.0, 0.3], [0.3, 1.0]]) * np.outer(sd, sd)
    b = rng.multivariate_normal(np.zeros(2), psi, size=n_groups)
    x = rng.normal(0.0, 1.0, n_rows)
    eta = -0.5 + 1.0 * x + b[g, 0] + b[g, 1] * x
    y = (rng.random(n_rows) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    return frame({"y": y, "x": x, "g": labels("g", n_groups)[g]})


def verbagg_like(seed: int = 20240612) -> pd.DataFrame:
    """A binary crossed design of the shape of lme4's ``VerbAgg``.

    316 subjects (``id``) answer 24 items (``item``): 7,584 rows, every pair
    once, rows sorted by item as VerbAgg's are. Subjects carry ``Anger``
    (whole numbers 11-39) and ``Gender`` (F/M, about 3:1); items are the 24
    combinations of ``btype`` (curse/scold/shout) x ``situ`` (other/self) x
    ``mode`` (want/do) x two situations. The response ``r2`` ("Y"/"N") follows
    ``r2 ~ Anger + Gender + btype + situ + (1|id) + (1|item)`` with effects of
    the size lme4's fit to VerbAgg finds: beta = (0.2, 0.057, 0.32, -1.06,
    -2.1, -1.05) for (Intercept, Anger - 20, GenderM, btypescold,
    btypeshout, situself), SD(id) = 1.34, SD(item) = 0.49.
    """
    rng = np.random.default_rng(seed)
    n_id, n_item = 316, 24
    anger = rng.integers(11, 40, n_id)
    gender = np.where(rng.random(n_id) < 0.24, "M", "F")
    btype = np.array(["curse", "scold", "shout"])[np.arange(n_item) % 3]
    situ = np.array(["other", "self"])[(np.arange(n_item) // 3) % 2]
    mode = np.array(["want", "do"])[(np.arange(n_item) // 6) % 2]
    item_id = labels("S", n_item)
    b_id = rng.normal(0.0, 1.34, n_id)
    b_item = rng.normal(0.0, 0.49, n_item)
    i_item = np.repeat(np.arange(n_item), n_id)
    i_id = np.tile(np.arange(n_id), n_item)
    eta = (0.2 + 0.057 * (anger[i_id] - 20) + 0.32 * (gender[i_id] == "M") - 1.06 * (btype[i_item] == "scold")
           - 2.1 * (btype[i_item] == "shout") - 1.05 * (situ[i_item] == "self") + b_id[i_id] + b_item[i_item])
    r2 = np.where(rng.random(eta.size) < 1.0 / (1.0 + np.exp(-eta)), "Y", "N")
    return frame({"r2": r2.astype(object), "Anger": anger[i_id].astype(float), "Gender": gender[i_id].astype(object),
                  "btype": btype[i_item].astype(object), "situ": situ[i_item].astype(object),
                  "mode": mode[i_item].astype(object), "item": item_id[i_item],
                  "id": labels("i", n_id)[i_id]})


# ---------------------------------------------------------------- the cases
CASES = {
    c.name: c
    for c in [
        Case("sleepstudy", "sleepstudy", "Reaction ~ Days + (Days | Subject)", sleepstudy,
             rows=180, groups={"Subject": 18}, runs_mmbook=21, runs_lme4=21, runs_sm=11,
             group_cols=("Subject",)),
        Case("slopes_100k", "100k rows, (x|g)", "y ~ x + (x | g)",
             lambda: slopes(100_000, 2_000, seed=100),
             rows=100_000, groups={"g": 2_000}),
        Case("slopes_1m", "1M rows, (x|g)", "y ~ x + (x | g)",
             lambda: slopes(1_000_000, 50_000, seed=1_000),
             rows=1_000_000, groups={"g": 50_000}, runs_lme4=3, runs_sm=1),
        Case("crossed_200k", "200k rows, (1|a)+(1|b)", "y ~ x + (1 | a) + (1 | b)",
             lambda: crossed(200_000, 2_000, 500, seed=200),
             rows=200_000, groups={"a": 2_000, "b": 500}, runs_lme4=3, runs_sm=1, sm="vc",
             group_cols=("a", "b")),
        Case("insteval_like", "InstEval-like", "y ~ x + (1 | s) + (1 | d) + (1 | dept)",
             insteval_like,
             rows=73_421, groups={"s": 2_972, "d": 1_128, "dept": 14}, runs_lme4=3, runs_sm=1,
             sm="vc", group_cols=("s", "d", "dept")),
        Case("slopes_10m", "10M rows, (x|g)", "y ~ x + (x | g)",
             lambda: slopes(10_000_000, 500_000, seed=10_000),
             rows=10_000_000, groups={"g": 500_000}, runs_mmbook=3, runs_lme4=1, runs_sm=0,
             sm="skip: statsmodels MixedLM visits the 500,000 groups one by one in Python "
                "(~1.5 min per fit on 1M rows / 50,000 groups); not run on 10M rows",
             big=True),
        Case("glmm_slopes_100k", "GLMM: 100k binary, (x|g)", "y ~ x + (x | g)",
             lambda: binary_slopes(100_000, 2_000, seed=101),
             rows=100_000, groups={"g": 2_000}, runs_mmbook=5, runs_lme4=3, family="binomial",
             sm="skip: statsmodels has no maximum-likelihood GLMM (BinomialBayesMixedGLM is variational Bayes)"),
        Case("glmm_verbagg_like", "GLMM: VerbAgg-like, (1|id)+(1|item)",
             "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)", verbagg_like,
             rows=7_584, groups={"id": 316, "item": 24}, runs_mmbook=5, runs_lme4=3, family="binomial",
             group_cols=("id", "item"),
             sm="skip: statsmodels has no maximum-likelihood GLMM (BinomialBayesMixedGLM is variational Bayes)"),
    ]
}


def make(name: str) -> pd.DataFrame:
    """The data frame of case ``name`` (see ``CASES``)."""
    try:
        case = CASES[name]
    except KeyError:
        raise KeyError(f"unknown benchmark case {name!r}; choose from {', '.join(CASES)}") from None
    return case.make()
