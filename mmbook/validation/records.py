"""Fit records: a fitted model's estimates as plain data, and how two records are compared.

A *fit record* is a JSON-ready dict with the layout of lme4's results in the
registry (``registry.json.xz``, written by ``make_registry.R``):

=============  ===========================================================
key            value
=============  ===========================================================
criterion      REML criterion (REML fits) or deviance ``-2 log L`` (ML)
logLik         log-likelihood (the REML one for REML fits, as lme4's)
theta          relative covariance parameters, lme4's order
theta_names    lme4's names: ``group.column`` on the diagonal of a
               term's factor, ``group.row.column`` below it
fixef          ``{name: estimate}``, lme4's column names
vcov           covariance matrix of the fixed effects (rows in
               ``fixef``'s order)
sigma          residual standard deviation
varcorr        ``as.data.frame(VarCorr(fit))`` by columns: ``grp``,
               ``var1``, ``var2`` (``null`` for a variance), ``vcov``,
               ``sdcor`` (SD, or correlation for a covariance)
ranef          ``{group: {levels, columns, values: {column: [...]}}}``,
               the conditional modes
isSingular     lme4's ``isSingular`` (tolerance 1e-4)
messages       the fit's warnings and messages, as text
nobs, ngroups  rows used; levels per grouping factor
=============  ===========================================================

All numbers are full doubles. :func:`compare` measures, for each quantity,
the largest difference between two records relative to the quantity's
natural scale, against a tolerance argued in :data:`TOLERANCES`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["fit_record", "theta_names", "compare", "Comparison", "TOLERANCES", "GLMM_TOLERANCES", "SCALES",
           "CRITERION_SLACK"]

# What "the same optimum" means, per quantity, as a relative difference (see SCALES).
# The reference is lme4 run to the optimum itself (bobyqa, rhoend = 1e-12); mmbook polishes its
# optimum with Newton steps. Both stop within ~1e-7 of theta's optimum; everything computed from
# theta moves at first order with it, the criterion at second order (it is flat there).
TOLERANCES = {
    "criterion": 1e-9,   # relative to max(1, |criterion|): second order in theta's error
    "theta": 1e-4,
    "fixef": 1e-4,
    "sigma": 1e-5,
    "vcov": 1e-4,
    "varcorr": 1e-4,
    "ranef": 1e-4,
}
SCALES = {
    "criterion": "max(1, |criterion|)",
    "theta": "max(|a|, |b|, 0.01)",
    "fixef": "the reference's standard error",
    "sigma": "the reference's sigma",
    "vcov": "sqrt(V_ii V_jj) of the reference",
    "varcorr": "variances: max(|a|, |b|, sigma^2/100); covariances: max(|a|, |b|, the SDs' product, sigma^2/100)",
    "ranef": "max(largest |b| of the grouping factor, sigma/100)",
}
# mmbook's criterion may not exceed lme4's default fit's by more than this (relative).
CRITERION_SLACK = 1e-9

# GLMMs (-2 logLik of the Laplace or quadrature approximation): lme4's glmer stops up to ~1e-5
# (relative) short of the optimum even with bobyqa's rhoend = 1e-12, unless its PIRLS tolerance
# (tolPwrss) is tightened too (tests/test_glmm_lme4.py compares with such fits at 1e-6 in logLik),
# so the stored "tight" fit is not the optimum: mmbook is compared with it at the distance lme4's
# stopping point leaves, and must not end above lme4's default. lme4's glmer vcov is a
# finite-difference Hessian of the deviance at that point (mmbook differences its exact gradient).
GLMM_TOLERANCES = {
    "criterion": 2e-5,
    "theta": 5e-3,
    "fixef": 5e-3,
    "vcov": 5e-2,
    "varcorr": 5e-3,
    "ranef": 5e-3,
}


def theta_names(fit) -> list[str]:
    """lme4's names of ``theta``: ``group.column`` on a term's diagonal, ``group.row.column`` below it."""
    out = []
    for t in fit.terms:
        c = list(t.cnames)
        for j in range(t.q):
            for i in range(j, t.q):
                out.append(f"{t.group}.{c[i]}" if i == j else f"{t.group}.{c[i]}.{c[j]}")
    return out


def _floats(x) -> list:
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(x, dtype=float).ravel()]


def fit_record(fit) -> dict:
    """The estimates of an :class:`~mmbook.LmerFit` as a fit record (layout above)."""
    vc = fit.varcorr
    ranef = {}
    for g, df in fit.ranef.items():
        ranef[str(g)] = {"levels": [str(v) for v in df.index], "columns": [str(c) for c in df.columns],
                         "values": {str(c): _floats(df[c].to_numpy()) for c in df.columns}}
    return {
        "criterion": float(fit.objective),
        "logLik": float(fit.loglik),
        "theta": _floats(fit.theta),
        "theta_names": theta_names(fit),
        "fixef": {str(k): float(v) for k, v in fit.fixef.items()},
        "vcov": [_floats(row) for row in fit.vcov.to_numpy()],
        "sigma": float(fit.sigma),
        "varcorr": {"grp": [str(g) for g in vc["grp"]],
                    "var1": [None if v is None or v != v else str(v) for v in vc["var1"]],
                    "var2": [None if v is None or v != v else str(v) for v in vc["var2"]],
                    "vcov": _floats(vc["vcov"]), "sdcor": _floats(vc["sdcor"])},
        "ranef": ranef,
        "isSingular": bool(fit.is_singular),
        "messages": [text for _, text in fit.messages],
        "nobs": int(fit.nobs),
        "ngroups": {str(k): int(v) for k, v in fit.ngroups.items()},
    }


@dataclass
class Comparison:
    """Two fit records compared, quantity by quantity.

    Attributes
    ----------
    worst : dict
        Quantity -> the largest scaled relative difference (see :data:`SCALES`).
    where : dict
        Quantity -> which element it was (``"theta[2]"``, ``"Days"``, ...).
    passed : dict
        Quantity -> ``worst <= TOLERANCES[quantity]``.
    problems : list of str
        Structural mismatches (different fixed effects, levels, ...) and failed
        checks, one line each.
    tolerances : dict
        The tolerances applied.
    """

    worst: dict = field(default_factory=dict)
    where: dict = field(default_factory=dict)
    passed: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)
    tolerances: dict = field(default_factory=lambda: dict(TOLERANCES))

    @property
    def ok(self) -> bool:
        return not self.problems and all(self.passed.values())

    def _put(self, quantity, diffs: dict):
        finite = {k: v for k, v in diffs.items() if v == v}
        if len(finite) < len(diffs):
            bad = [k for k, v in diffs.items() if v != v]
            self.problems.append(f"{quantity}: missing or non-finite values at {', '.join(bad[:3])}")
        k = max(finite, key=finite.get) if finite else ""
        self.worst[quantity] = float(finite[k]) if finite else 0.0
        self.where[quantity] = k
        self.passed[quantity] = bool(self.worst[quantity] <= self.tolerances[quantity]) and len(finite) == len(diffs)


def _rel(a, b, scale) -> float:
    if a is None or b is None:
        return math.nan
    d = abs(a - b)
    s = max(abs(a), abs(b), scale)
    return d / s if s > 0 else (0.0 if d == 0 else math.inf)


def compare(record: dict, reference: dict, default: dict | None = None, tolerances: dict | None = None) -> Comparison:
    """Compare a fit record with a reference one (e.g. mmbook's with lme4's at the optimum).

    Parameters
    ----------
    record : dict
        The fit record under test.
    reference : dict
        The reference record (lme4's fit at tight tolerances, in the registry).
    default : dict, optional
        lme4's fit with its default settings: ``record``'s criterion must not
        exceed it by more than :data:`CRITERION_SLACK` (relative).
    tolerances : dict, optional
        Quantity -> tolerance, replacing :data:`TOLERANCES` (e.g. much
        tighter ones when both records come from the same ``theta``).

    Returns
    -------
    Comparison
    """
    out = Comparison(tolerances={**TOLERANCES, **(tolerances or {})})
    ref_crit = reference["criterion"]
    out._put("criterion", {"criterion": abs(record["criterion"] - ref_crit) / max(1.0, abs(ref_crit))})
    if default is not None:
        d = record["criterion"] - default["criterion"]
        if d > CRITERION_SLACK * max(1.0, abs(default["criterion"])):
            out.problems.append(f"criterion {record['criterion']:.10g} is above lme4's default fit's "
                                f"{default['criterion']:.10g}")

    if list(record["theta_names"]) != list(reference["theta_names"]):
        out.problems.append(f"theta: names {record['theta_names']} differ from {reference['theta_names']}")
    else:
        out._put("theta", {f"theta[{i}] {n}": _rel(a, b, 0.01) for i, (n, a, b) in
                           enumerate(zip(reference["theta_names"], record["theta"], reference["theta"]))})

    names = list(reference["fixef"])
    V = np.asarray(reference["vcov"], dtype=float).reshape(len(names), len(names))
    if sorted(record["fixef"]) != sorted(names):
        out.problems.append(f"fixef: columns {list(record['fixef'])} differ from {names}")
    else:
        se = np.sqrt(np.diag(V))
        out._put("fixef", {n: abs(record["fixef"][n] - reference["fixef"][n]) / se[i] if se[i] > 0 else math.inf
                           for i, n in enumerate(names)})
        order = [list(record["fixef"]).index(n) for n in names]
        W = np.asarray(record["vcov"], dtype=float).reshape(len(names), len(names))[np.ix_(order, order)]
        D = np.sqrt(np.outer(np.diag(V), np.diag(V)))
        with np.errstate(divide="ignore", invalid="ignore"):
            R = np.abs(W - V) / D
        out._put("vcov", {f"vcov[{names[i]}, {names[j]}]": float(R[i, j])
                          for i in range(len(names)) for j in range(i + 1)})

    sigma = reference["sigma"]
    out._put("sigma", {"sigma": abs(record["sigma"] - sigma) / sigma if sigma > 0 else 0.0})
    _compare_varcorr(out, record["varcorr"], reference["varcorr"], sigma)
    if "ranef" in reference:
        _compare_ranef(out, record.get("ranef", {}), reference["ranef"], sigma)
    return out


def _vc_rows(vc):
    return {(g, v1, v2): (x, s) for g, v1, v2, x, s in zip(vc["grp"], vc["var1"], vc["var2"], vc["vcov"], vc["sdcor"])}


def _compare_varcorr(out: Comparison, vc, ref, sigma):
    a, b = _vc_rows(vc), _vc_rows(ref)
    if set(a) != set(b):
        out.problems.append(f"varcorr: rows {sorted(map(str, a))} differ from {sorted(map(str, b))}")
        return
    s2 = sigma ** 2 / 100
    diffs = {}
    for key, (x_ref, sd_ref) in b.items():
        g, v1, v2 = key
        x = a[key][0]
        if v2 is None:
            scale = s2
        else:
            sd1 = b[(g, v1, None)][1] if (g, v1, None) in b else 0.0
            sd2 = b[(g, v2, None)][1] if (g, v2, None) in b else 0.0
            scale = max(s2, (sd1 or 0.0) * (sd2 or 0.0))
        label = g + (f" {v1}" if v1 else "") + (f", {v2}" if v2 else "")
        diffs[label] = _rel(x, x_ref, scale)
    out._put("varcorr", diffs)


def _compare_ranef(out: Comparison, re, ref, sigma):
    diffs = {}
    for g, r in ref.items():
        if g not in re:
            out.problems.append(f"ranef: no grouping factor {g!r} (have {sorted(re)})")
            continue
        mine = re[g]
        if list(map(str, mine["levels"])) != list(map(str, r["levels"])) or list(mine["columns"]) != list(r["columns"]):
            pos = {lev: i for i, lev in enumerate(map(str, mine["levels"]))}
            missing = [lev for lev in map(str, r["levels"]) if lev not in pos]
            if missing or set(mine["columns"]) != set(r["columns"]):
                out.problems.append(f"ranef {g}: levels or columns differ from the reference's")
                continue
            order = [pos[lev] for lev in map(str, r["levels"])]
        else:
            order = list(range(len(r["levels"])))
        ref_vals = np.column_stack([np.asarray(r["values"][c], dtype=float) for c in r["columns"]])
        my_vals = np.column_stack([np.asarray(mine["values"][c], dtype=float)[order] for c in r["columns"]])
        scale = max(float(np.max(np.abs(ref_vals))) if ref_vals.size else 0.0, sigma / 100)
        d = np.abs(my_vals - ref_vals)
        diffs[g] = float(np.max(d)) / scale if d.size else 0.0
    out._put("ranef", diffs)
