"""The data frames the book's chapters build, rebuilt for the registry of reference fits.

Every model the book fits is in the registry; some are fitted to frames a
chapter derives from a data set (a subset of sleepstudy, a second response
drawn for the simulated data) or simulates with NumPy's generator. Each
function below rebuilds one of them exactly as its chapter does (the chapter
is named in ``BOOK_FRAMES``); :func:`frame` returns any data set of the
registry by name, from :mod:`mmbook.datasets` or from here.

R fits these frames from CSV files written by :func:`export` (see
``mmbook/validation/make_registry.R``), and the registry stores R's checksum
of each, so :func:`mmbook.validation.validate` can tell when a frame built
here is not the one lme4 fitted (NumPy's generator and the BLAS may move the
last bits of a drawn response; the check allows 1e-12 relative).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import special

from .. import datasets
from ..data import load_cbpp
from ..forms.marginal import marginal_cov
from ..forms.panel import add_cluster_means
from ..rcompat.rng import RRandom
from ..rcompat.simulation import simulate_random_intercepts, simulate_random_slopes

__all__ = ["BOOK_FRAMES", "frame", "frame_names", "checksum", "export"]


def _sleepstudy() -> pd.DataFrame:
    d = datasets.load("sleepstudy")
    d["Days"] = d["Days"].astype("int64")  # as mmbook.load_sleepstudy, which the chapters use
    return d


def sleepstudy_deprived() -> pd.DataFrame:
    """form1: days 1-9 only, with each subject's centred day-0 reaction time ``baseline_c``."""
    s = _sleepstudy()
    baseline = s.loc[s["Days"] == 0].set_index("Subject")["Reaction"]
    baseline_c = baseline - baseline.mean()
    d = s.loc[s["Days"] >= 1].reset_index(drop=True)
    d["baseline_c"] = d["Subject"].map(baseline_c).astype(float)
    return d


def sleepstudy_two_level() -> pd.DataFrame:
    """form1: the deprived days with the level-two design ``Z W`` as columns ``level2_one``, ``level2_baseline``."""
    d = sleepstudy_deprived()
    d["level2_one"] = 1.0
    d["level2_baseline"] = d["baseline_c"]  # Z W: each row gets its subject's row of W
    return d


def sleepstudy_dropout() -> pd.DataFrame:
    """form2: subject k (in level order, from 0) keeps days 0 to k mod 10."""
    s = _sleepstudy()
    days_kept = s["Subject"].cat.codes % 10 + 1
    return s[s["Days"] < days_kept].reset_index(drop=True)


def sim_ris_marginal() -> pd.DataFrame:
    """form4: the document's slopes simulation with ``y_marginal`` drawn from the marginal model (NumPy seed 2016)."""
    sim = simulate_random_slopes()
    Sigma = marginal_cov(Z=sim.Z, psi=sim.psi, sigma=sim.sigma)
    L = np.linalg.cholesky(Sigma)
    rng = np.random.default_rng(2016)
    y_marginal = sim.X @ sim.beta + L @ rng.standard_normal(len(sim.X))
    return sim.data.assign(y_marginal=y_marginal)


def sim_ris_cholesky() -> pd.DataFrame:
    """appendix_slopes: ``y5 = X beta + L z``, ``L`` the Cholesky factor of the marginal covariance,
    ``z`` R's ``rnorm`` after ``set.seed(1234)``."""
    sim = simulate_random_slopes()
    L = np.linalg.cholesky(sim.marginal_cov())
    z = RRandom(1234).rnorm(len(sim.X))
    return sim.data.assign(y5=sim.X @ sim.beta + L @ z)


def sim_ris_bycluster() -> pd.DataFrame:
    """appendix_slopes: the response ``y4`` computed cluster by cluster (equal to ``y`` within 1e-12)."""
    sim = simulate_random_slopes()
    return sim.data.assign(y4=sim.y_bycluster)


def sim_ri_small_tau() -> pd.DataFrame:
    """simulate: the chapter's replication with the smallest estimated tau (``tau = 0.25``, ``set.seed(60)``)."""
    return simulate_random_intercepts(seed=60, tau=0.25).data


def pupils() -> pd.DataFrame:
    """other_topics: 40 schools of 15 pupils, every other school runs a programme (NumPy seed 2016)."""
    rng = np.random.default_rng(2016)
    n_schools, n_pupils = 40, 15
    school = np.repeat(np.arange(n_schools), n_pupils)
    programme = np.arange(n_schools) % 2
    prior = rng.normal(size=school.size)
    school_effect = rng.normal(0, 4, size=n_schools)
    score = (50 + 4 * prior + 5 * programme[school]
             + school_effect[school] + rng.normal(0, 8, size=school.size))
    return pd.DataFrame({"score": score, "prior": prior, "programme": programme[school],
                         "school": [f"s{j:02d}" for j in school]})


def schools_classes() -> pd.DataFrame:
    """other_topics: 4 classes of 10 pupils in each of 40 schools, classes labelled 1-4 within a
    school (NumPy seed 1)."""
    rng = np.random.default_rng(1)
    n_schools, n_classes, n_pupils = 40, 4, 10
    school = np.repeat(np.arange(n_schools), n_classes * n_pupils)
    klass = np.tile(np.repeat(np.arange(n_classes), n_pupils), n_schools)
    school_effect = rng.normal(0, 1.0, size=n_schools)
    class_effect = rng.normal(0, 0.6, size=n_schools * n_classes)
    y = (10 + school_effect[school] + class_effect[school * n_classes + klass]
         + rng.normal(0, 1.0, size=school.size))
    return pd.DataFrame({"y": y, "school": [f"s{j:02d}" for j in school], "class": [str(k + 1) for k in klass]})


def reading() -> pd.DataFrame:
    """other_topics: 30 subjects crossed with 20 items, reading times (NumPy seed 2)."""
    rng = np.random.default_rng(2)
    n_subjects, n_items = 30, 20
    subject = np.repeat(np.arange(n_subjects), n_items)
    item = np.tile(np.arange(n_items), n_subjects)
    x = rng.normal(size=subject.size)
    rt = (500 + 20 * x + rng.normal(0, 30, size=n_subjects)[subject]
          + rng.normal(0, 20, size=n_items)[item]
          + rng.normal(0, 25, size=subject.size))
    return pd.DataFrame({"rt": rt, "x": x, "subject": [f"p{s:02d}" for s in subject],
                         "item": [f"w{i:02d}" for i in item]})


def panel() -> pd.DataFrame:
    """other_topics: 60 clusters of 3-12 rows whose effect correlates with the cluster mean of x (NumPy seed 2024)."""
    rng = np.random.default_rng(2024)
    n_clusters = 60
    size = rng.integers(3, 13, size=n_clusters)
    g = np.repeat(np.arange(n_clusters), size)
    x = rng.normal(size=n_clusters)[g] + rng.normal(size=g.size)
    d = add_cluster_means(pd.DataFrame({"x": x, "g": [f"c{j:02d}" for j in g]}), "x", "g")
    cluster_effect = 1.0 * d["x_mean"] + rng.normal(0, 0.5, size=n_clusters)[g]
    d["y"] = 2 + 0.5 * x + cluster_effect + rng.normal(0, 1, size=g.size)
    return d


def sleepstudy_centred() -> pd.DataFrame:
    """form1: sleepstudy with ``Days_c = Days - 4.5``, the days centred at their mean."""
    s = _sleepstudy()
    return s.assign(Days_c=s["Days"] - 4.5)


def cluster_covariate() -> pd.DataFrame:
    """form1: 100 clusters of 5 rows with a cluster-level covariate ``x_star`` (NumPy seed 1234).

    The chapter fits ``y ~ x + x_star`` and the same model written with the
    level-two design ``Z W`` as columns ``level2_one`` and ``level2_xstar``
    (each row gets its cluster's row of ``W``; ``Z`` holds one 1 per row, so
    ``Z W`` is exactly the cluster's values); both sets of columns are here.
    """
    m, n_c = 100, 5
    rng = np.random.default_rng(1234)
    x_star = rng.normal(size=m)
    gamma = rng.normal(0.0, 0.5, size=m)
    alpha = 3.0 + 0.5 * x_star + gamma
    clus = np.repeat(np.arange(m), n_c)
    x = rng.normal(size=m * n_c)
    e = rng.normal(0.0, 1.0, size=m * n_c)
    y = alpha[clus] + 0.75 * x + e
    labels = np.array([f"c{k:03d}" for k in range(m)])
    return pd.DataFrame({"y": y, "x": x, "clus": labels[clus], "level2_one": 1.0, "level2_xstar": x_star[clus],
                         "x_star": x_star[clus]})


def split_plot() -> pd.DataFrame:
    """other_topics: 12 fields (whole plots, irrigation) of 4 plots (sub-plots, variety) (NumPy seed 1301)."""
    rng = np.random.default_rng(1301)
    n_fields = 12
    field = np.repeat(np.arange(n_fields), 4)
    irrigation = np.array(["low", "medium", "high"])[np.arange(n_fields) % 3][field]
    variety = np.tile(["V1", "V2", "V3", "V4"], n_fields)
    field_effect = rng.normal(0, 1.5, size=n_fields)
    effect = (pd.Series(irrigation).map({"low": 0.0, "medium": 1.0, "high": 1.5})
              + pd.Series(variety).map({"V1": 0.0, "V2": 0.5, "V3": 1.0, "V4": 0.2}))
    return pd.DataFrame({
        "harvest": 20 + effect + field_effect[field] + rng.normal(0, 0.7, size=field.size),
        "irrigation": pd.Categorical(irrigation, categories=["low", "medium", "high"]),
        "variety": variety, "field": [f"f{j:02d}" for j in field]})


def few_clusters() -> pd.DataFrame:
    """other_topics: 8 clusters of 4 rows, a small between-cluster SD (NumPy seed 2)."""
    rng = np.random.default_rng(2)
    g = np.repeat(np.arange(8), 4)
    return pd.DataFrame({"y": 5 + rng.normal(0, 0.5, size=8)[g] + rng.normal(0, 1, size=g.size),
                         "g": [f"c{j}" for j in g]})


def glmm_binary() -> pd.DataFrame:
    """glmm: 500 clusters of 12 binary responses, logit of a random-intercept model (NumPy seed 1988)."""
    rng = np.random.default_rng(1988)
    J, m, tau = 500, 12, 2.0
    cluster = np.repeat(np.arange(J), m)
    x = rng.normal(size=J * m)
    gamma = rng.normal(0.0, tau, J)
    eta = -1.0 + 1.0 * x + gamma[cluster]
    y = (rng.random(J * m) < special.expit(eta)).astype(float)
    return pd.DataFrame({"y": y, "x": x, "cluster": [f"c{j:03d}" for j in cluster]})


def glmm_counts() -> pd.DataFrame:
    """glmm: the first of the chapter's 100 Poisson data sets: 40 sites of 15 counts with exposure ``t``,
    correlated random intercepts and slopes (NumPy seed 2024)."""
    rng = np.random.default_rng(2024)
    J, m = 40, 15
    beta, sd, rho = np.array([0.5, 0.4]), np.array([0.6, 0.3]), -0.3
    psi = np.outer(sd, sd) * np.array([[1, rho], [rho, 1]])
    site = np.repeat(np.arange(J), m)
    x = rng.normal(size=J * m)
    t = rng.uniform(0.5, 3.0, J * m)
    b = rng.multivariate_normal(np.zeros(2), psi, size=J)
    mu = t * np.exp(beta[0] + beta[1] * x + b[site, 0] + b[site, 1] * x)
    return pd.DataFrame({"y": rng.poisson(mu), "x": x, "t": t,
                         "site": np.array([f"s{j:02d}" for j in range(J)])[site]})


def cbpp_animals() -> pd.DataFrame:
    """glmm: cbpp with one binary row per animal (``y`` = 1 for the ``incidence`` first animals of a row)."""
    cbpp = load_cbpp()
    rows = cbpp.loc[cbpp.index.repeat(cbpp["size"])].copy()
    rows["y"] = np.concatenate([[1] * k + [0] * (n - k) for k, n in zip(cbpp["incidence"], cbpp["size"])])
    return rows[["herd", "period", "y"]].reset_index(drop=True)


# name -> (builder, chapter that builds it)
BOOK_FRAMES = {
    "sleepstudy_deprived": (sleepstudy_deprived, "form1_varying_coefficients"),
    "sleepstudy_two_level": (sleepstudy_two_level, "form1_varying_coefficients"),
    "sleepstudy_dropout": (sleepstudy_dropout, "form2_separate_regressions"),
    "sim_ris_marginal": (sim_ris_marginal, "form4_error_terms"),
    "sim_ris_cholesky": (sim_ris_cholesky, "appendix_slopes"),
    "sim_ris_bycluster": (sim_ris_bycluster, "appendix_slopes"),
    "sim_ri_small_tau": (sim_ri_small_tau, "simulate"),
    "pupils": (pupils, "other_topics"),
    "schools_classes": (schools_classes, "other_topics"),
    "reading": (reading, "other_topics"),
    "panel": (panel, "other_topics"),
    "sleepstudy_centred": (sleepstudy_centred, "form1_varying_coefficients"),
    "cluster_covariate": (cluster_covariate, "form1_varying_coefficients"),
    "split_plot": (split_plot, "other_topics"),
    "few_clusters": (few_clusters, "other_topics"),
    "glmm_binary": (glmm_binary, "glmm"),
    "glmm_counts": (glmm_counts, "glmm"),
    "cbpp_animals": (cbpp_animals, "glmm"),
}


def frame_names() -> list:
    """Every data set the registry can use: :mod:`mmbook.datasets`' and the book's frames."""
    return [*datasets.names(), *BOOK_FRAMES]


def frame(name: str) -> pd.DataFrame:
    """A data set of the registry by name: from :mod:`mmbook.datasets` or :data:`BOOK_FRAMES`.

    Raises
    ------
    KeyError
        No data set of that name (the message lists them).
    """
    if name in BOOK_FRAMES:
        return BOOK_FRAMES[name][0]()
    try:
        return datasets.load(name)
    except KeyError:
        raise KeyError(f"no data set named {name!r}; the registry knows: {', '.join(frame_names())}") from None


def checksum(d: pd.DataFrame) -> dict:
    """Column -> ``{"sum", "sumsq"}`` (exact sums of a numeric column) or ``{"counts"}`` (rows per label, sorted)."""
    out = {}
    for col in d.columns:
        x = d[col]
        if pd.api.types.is_numeric_dtype(x) and not isinstance(x.dtype, pd.CategoricalDtype):
            v = x.to_numpy(dtype=float)
            out[col] = {"sum": math.fsum(v), "sumsq": math.fsum(v * v)}
        else:
            counts = x.astype(str).value_counts()
            out[col] = {"counts": {k: int(counts[k]) for k in sorted(counts.index)}}
    return out


def export(directory, names=None) -> list:
    """Write frames as CSV (doubles at full precision) with ``frames.json`` (column types, factor levels).

    This is what ``make_registry.R`` reads for the frames that are not in an
    R package, and what an implementation in another language can read to
    fit the registry's models. Returns the paths written.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta, written = {}, []
    for name in names or frame_names():
        d = frame(name)
        cols = []
        for col in d.columns:
            x = d[col]
            if isinstance(x.dtype, pd.CategoricalDtype):
                cols.append({"name": col, "dtype": "category", "levels": [str(v) for v in x.cat.categories],
                             "ordered": bool(x.cat.ordered)})
            elif pd.api.types.is_integer_dtype(x):
                cols.append({"name": col, "dtype": "int64"})
            elif pd.api.types.is_float_dtype(x):
                cols.append({"name": col, "dtype": "float64"})
            else:
                cols.append({"name": col, "dtype": "string"})
        path = directory / f"{name}.csv"
        d.to_csv(path, index=False, float_format=None)  # repr: shortest text that reads back exactly
        meta[name] = {"rows": len(d), "columns": cols, "file": path.name}
        written.append(path)
    (directory / "frames.json").write_text(json.dumps(meta, indent=1))
    written.append(directory / "frames.json")
    return written
