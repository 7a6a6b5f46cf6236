"""The same model fitted by statsmodels' ``MixedLM``, side by side with mmbook's fit.

statsmodels writes the model group by group,

.. math::  y_i = X_i\\beta + Z_i \\gamma_i + \\sum_k W_{ik} c_{ik} + e_i, \\qquad
           \\gamma_i \\sim N(0, \\Psi), \\quad c_{ik} \\sim N(0, \\tau_k^2 I), \\quad
           e_i \\sim N(0, \\sigma^2 I),

with one grouping factor (``groups``), one correlated random-effects block
``gamma_i`` per group (columns ``Z_i`` from ``re_formula``; covariance
``cov_re`` = ``Psi``) and any number of *variance components*: for each
``vc_formula[k]`` the columns ``W_ik`` of group ``i`` get independent
effects with a common variance ``vcomp[k]`` = ``tau_k^2``. Both are reported
on the data scale; ``scale`` is ``sigma^2``. An lme4 model maps onto this
when all its grouping factors are nested in one of them, or when every term
has a single column (crossed factors, see below). :func:`crosscheck`
translates an mmbook fit, fits it with a few optimizers, keeps the best, and
compares criterion, fixed effects, variance components and conditional modes.
"""

from __future__ import annotations

import keyword
import math
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .engine.design import r_column_name
from .extras import require
from .tables import fmt_at, html_table, resolution, text_table

__all__ = ["CrossCheck", "Translation", "crosscheck", "translate", "gls_crosscheck"]

CRITERION_RTOL = 1e-6     # criteria "agree" within this relative difference
ESTIMATE_RTOL = 1e-4      # estimates "agree" within this (scaled) relative difference
EVAL_RTOL = 1e-8          # statsmodels' criterion at mmbook's theta must equal mmbook's
TINY_REL = 1e-9           # mmbook's criterion "not higher" than statsmodels': within this
SAME_OPTIMUM_RTOL = 1e-9  # statsmodels optimizers this close reached the same optimum
SHOWN_DIGITS = 4          # estimates print to this many significant digits of their size
CRITERION_DIGITS = 7      # criteria print to this many (their tolerance is 1e-6)


@dataclass
class Translation:
    """How an lme4 model is written for ``statsmodels.MixedLM.from_formula``.

    Attributes
    ----------
    formula : str
        Fixed part, ``"response ~ ..."``.
    groups : str
        Column of ``data`` used as statsmodels' ``groups``.
    re_formula : str or None
        The correlated block (``None`` when there is none).
    vc_formula : dict
        Variance components, name -> formula.
    data : pandas.DataFrame
        The rows mmbook used, with the extra columns the formulas refer to
        (grouping factors as integer codes of mmbook's levels).
    top : str or None
        mmbook's name of the factor used as ``groups`` (``None``: crossed,
        a single group of all rows).
    re_term : int or None
        Index (in ``fit.terms``) of the term in ``re_formula``.
    vc_terms : dict
        Variance-component name -> index of the term in ``fit.terms``.
    fixed_from_X : bool
        True when the fixed part is mmbook's ``X`` itself (columns dropped
        for rank deficiency, or names that could not be matched).
    notes : list of str
        One line per decision, for the docstring-like description.
    """

    formula: str
    groups: str
    re_formula: str | None
    vc_formula: dict
    data: pd.DataFrame
    top: str | None
    re_term: int | None
    vc_terms: dict
    fixed_from_X: bool = False
    notes: list = field(default_factory=list)

    def __str__(self) -> str:
        args = [repr(self.formula), "data", f"groups={self.groups!r}"]
        if self.re_formula is not None:
            args.append(f"re_formula={self.re_formula!r}")
        if self.vc_formula:
            args.append(f"vc_formula={self.vc_formula!r}")
        return "MixedLM.from_formula(" + ", ".join(args) + ")"


def _formula_name(name: str) -> bool:
    """True when ``name`` can stand as itself in a patsy formula (an identifier, not a Python keyword:
    a column called ``yield`` or ``class`` must be renamed)."""
    return re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) is not None and not keyword.iskeyword(name)


def _safe_name(name: str, taken) -> str:
    base = re.sub(r"\W+", "_", name).strip("_") or "v"
    if base[0].isdigit() or keyword.iskeyword(base):
        base = "v_" + base
    out, k = base, 1
    while out in taken:
        out, k = f"{base}_{k}", k + 1
    return out


def _nested_in(inner: np.ndarray, outer: np.ndarray) -> bool:
    """True when every level of ``inner`` lies within a single level of ``outer``."""
    pairs = np.unique(np.column_stack([inner, outer]), axis=0)
    return len(pairs) == len(np.unique(inner))


def translate(fit) -> Translation:
    """Write an mmbook fit as a statsmodels ``MixedLM`` model (the rules are listed in :func:`crosscheck`).

    Grouping factors are passed as integer codes of mmbook's levels (so
    levels match one to one; a pandas Categorical would give statsmodels
    empty columns for levels absent from a group). The fixed part is the
    fit's own fixed formula, or mmbook's ``X`` when lme4 dropped columns for
    rank deficiency.

    Raises
    ------
    NotImplementedError
        The model has a vector-valued term on a factor that is not the
        outermost one (e.g. ``(x | subj) + (1 | item)`` crossed, or
        ``(x | a/b)``): statsmodels' variance components are scalar.
    """
    if fit.mf.residual is not None:
        raise NotImplementedError(
            "statsmodels MixedLM has no correlated residuals: compare the fixed effects with statsmodels' "
            "GLS at the fitted covariance instead (mmbook.crosscheck.gls_crosscheck)")
    terms = list(fit.terms)
    frame = fit.mf.frame.reset_index(drop=True).copy()
    taken = set(map(str, frame.columns))
    text_used = " ".join([fit.mf.formula.fixed] + [t.bar.expr for t in terms])
    notes = []

    # response: a column of y as mmbook computed it when it is an expression
    resp = fit.mf.formula.response
    if resp not in frame.columns or not _formula_name(resp):
        name = _safe_name(resp, taken)
        frame[name] = fit.mf.y
        taken.add(name)
        notes.append(f"response {resp} as column {name!r}")
        resp = name

    # grouping factors as integer codes of mmbook's levels
    gcol: dict[str, str] = {}
    for t in terms:
        if t.group in gcol:
            continue
        single = _formula_name(t.group)
        used = single and re.search(rf"(?<![\w.]){re.escape(t.group)}(?![\w.])", text_used)
        name = t.group if single and not used else _safe_name(t.group, taken)
        frame[name] = t.refs.astype(np.int64)
        taken.add(name)
        gcol[t.group] = name

    # the outermost factor: one in which every other factor is nested (a smooth spans all rows:
    # then there is one group, and each term is a variance component)
    smooth = [k for k, t in enumerate(terms) if t.structure == "identity"]
    top = None
    for t in sorted(terms, key=lambda t: t.nlevels):
        if not smooth and all(_nested_in(u.refs, t.refs) for u in terms):
            top = t.group
            break
    if top is None:
        groups = _safe_name("group", taken)
        frame[groups] = 1
        notes.append("crossed factors: a single group holding every row, one variance component per term")
    else:
        groups = gcol[top]

    on_top = [k for k, t in enumerate(terms) if t.group == top]
    re_term = None
    if on_top:
        vector = [k for k in on_top if terms[k].q > 1]
        if len(vector) > 1:
            raise NotImplementedError(
                f"statsmodels MixedLM cannot represent two vector-valued terms on {top!r} "
                f"({', '.join('(' + terms[k].bar.text + ')' for k in vector)})")
        re_term = vector[0] if vector else on_top[0]
    vc_formula, vc_terms = {}, {}
    for k, t in enumerate(terms):
        if k == re_term:
            continue
        if k in smooth:  # a smooth's penalized columns: one variance component, tau^2 I
            cols = []
            for j, c in enumerate(t.cnames):
                name = _safe_name(f"{t.group}_{c}", taken)
                frame[name] = t.z[:, j]
                taken.add(name)
                cols.append(name)
            vc_formula[t.group] = "0 + " + " + ".join(cols)
            vc_terms[t.group] = k
            notes.append(f"{t.group}: its {t.q} penalized columns as one variance component")
            continue
        if t.q > 1:
            raise NotImplementedError(
                f"statsmodels MixedLM cannot represent the vector-valued term ({t.bar.text}) "
                + ("crossed with another grouping factor" if top is None else f"nested in {top!r}")
                + ": its variance components are scalar")
        cname = t.cnames[0]
        if t.group == top:
            formula = "1" if cname == "(Intercept)" else t.bar.expr
            vname = t.group if cname == "(Intercept)" else f"{t.group}.{cname}"
        else:
            col = gcol[t.group]
            if cname == "(Intercept)":
                formula, vname = f"0 + C({col})", t.group
            else:
                var = t.bar.expr.split("+", 1)[1].strip() if t.bar.expr.startswith("0 +") else None
                if var is None or var not in frame.columns:
                    var = _safe_name(f"z_{cname}", taken)
                    frame[var] = t.z[:, 0]
                    taken.add(var)
                formula, vname = f"0 + C({col}):{var}", f"{t.group}.{cname}"
        while vname in vc_formula:
            vname += "_"
        vc_formula[vname] = formula
        vc_terms[vname] = k

    fixed = fit.mf.formula.fixed
    fixed_from_X = bool(fit.mf.dropped_columns) or bool(smooth)
    if fixed_from_X:
        fixed = _add_X(frame, fit, taken)
        notes.append("fixed part: mmbook's X (lme4 dropped " + ", ".join(fit.mf.dropped_columns) + ")")
    re_formula = None if re_term is None else terms[re_term].bar.expr
    return Translation(formula=f"{resp} ~ {fixed}", groups=groups, re_formula=re_formula,
                       vc_formula=vc_formula, data=frame, top=top, re_term=re_term, vc_terms=vc_terms,
                       fixed_from_X=fixed_from_X, notes=notes)


def _add_X(frame: pd.DataFrame, fit, taken) -> str:
    cols = []
    for j in range(fit.mf.p):
        name = _safe_name(f"X{j}", taken)
        frame[name] = fit.mf.X[:, j]
        taken.add(name)
        cols.append(name)
    return " + ".join(["0"] + cols)


@dataclass
class CrossCheck:
    """mmbook's fit and statsmodels' fit of the same model, compared.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per quantity (the criterion; the criterion statsmodels
        computes at mmbook's ``theta``; each fixed effect; each variance,
        covariance and the residual variance; the largest difference of the
        conditional modes), at full precision. Columns:

        * ``mmbook``, ``statsmodels``: the two values (``nan`` where
          statsmodels' value could not be obtained);
        * ``abs_diff``: ``|mmbook - statsmodels|``;
        * ``rel_diff``: ``abs_diff / max(|mmbook|, |statsmodels|, scale)``;
        * ``scale``: the quantity's natural size, so that a quantity that is
          zero in both fits does not inflate ``rel_diff``: 1 for a
          criterion, a fixed effect's standard error, ``sigma^2 / 100`` for a
          variance, the product of the two SDs for a covariance, the largest
          conditional mode for the conditional modes;
        * ``tolerance``: the relative tolerance of the row (1e-6 for the
          criterion, 1e-8 for statsmodels' criterion at mmbook's ``theta``,
          1e-4 for estimates);
        * ``agree``: ``rel_diff <= tolerance`` (``None``: not compared);
        * ``kind``: ``criterion``, ``evaluation``, ``estimate`` or ``ranef``;
        * ``note``: why a row was not compared, else empty.
    criterion_diff : float
        mmbook's criterion minus statsmodels' (negative: mmbook is lower).
    max_rel_diff : float
        Largest ``rel_diff`` of the estimates (criterion rows excluded).
    agree : bool
        True when the criteria agree within 1e-6 (relative) and every
        estimate within 1e-4, or when statsmodels stopped short of the
        optimum (its criterion is not lower than mmbook's); in both cases
        statsmodels' own criterion at mmbook's ``theta``, when it could be
        evaluated, must equal mmbook's within 1e-8.
    verdict : str
        Which case, in words, followed by ``not compared: ...`` for each
        quantity that could not be compared and why.
    not_compared : dict
        Quantity -> the reason it could not be compared (empty when every
        row was compared).
    method : str
        The statsmodels optimizer whose result is kept.
    attempts : dict
        Optimizer -> its criterion, or the error it raised.
    translation : Translation
    result : statsmodels MixedLMResults
        The kept statsmodels fit (``None`` if every optimizer failed).

    Notes
    -----
    **Display** (``str``, the notebook's HTML): each value rounded to
    ``SHOWN_DIGITS`` (4) significant digits of ``max(|mmbook|, scale)``, the
    criteria to ``CRITERION_DIGITS`` (7), with a column giving the row's
    tolerance and whether the two agree within it. Where they agree,
    statsmodels' column repeats mmbook's rounded value: its own last digits
    move with where its optimizer stops (with the BLAS kernel), and printing
    them would make the table differ between machines; where they disagree
    it shows statsmodels' own value. The exact numbers are in :attr:`table`.
    """

    table: pd.DataFrame
    criterion_diff: float
    max_rel_diff: float
    agree: bool
    verdict: str
    method: str | None
    attempts: dict
    translation: Translation
    result: object = None
    REML: bool = True
    not_compared: dict = field(default_factory=dict)

    HEADER = ("quantity", "mmbook", "statsmodels", "tolerance", "agree")

    @property
    def title(self) -> str:
        return f"mmbook vs statsmodels MixedLM ({'REML' if self.REML else 'ML'})"

    def display_rows(self) -> list[tuple[str, str, str, str, str]]:
        """The rows as printed: quantity, mmbook, statsmodels, tolerance, agree (see Notes)."""
        rows = []
        for label, r in self.table.iterrows():
            if r.kind in ("criterion", "evaluation"):
                size = max(abs(r.mmbook), 1.0)
                e = resolution(size, CRITERION_DIGITS)
            else:
                size = max(abs(r.mmbook), r.scale)
                e = resolution(size, SHOWN_DIGITS)
            mm = fmt_at(r.mmbook, e, size)
            sm = mm if r.agree is True else fmt_at(r.statsmodels, e, size)
            verdict = {True: "yes", False: "no"}.get(r.agree, "not compared")
            rows.append((str(label), mm, sm, f"{r.tolerance:.0e}", verdict))
        return rows

    def _notes(self) -> list[str]:
        return ["rel. difference = |mmbook - statsmodels| / max(|mmbook|, |statsmodels|, scale); scale: "
                "1 for a criterion, the standard error for a fixed effect, sigma^2/100 for a variance, "
                "the product of the SDs for a covariance, max |b| for the conditional modes. Values to "
                f"{SHOWN_DIGITS} significant digits of max(|mmbook|, scale) (criteria: {CRITERION_DIGITS}); "
                "where the two agree, statsmodels' column repeats mmbook's rounded value "
                "(exact values: .table)."]

    def __str__(self) -> str:
        return text_table(self.HEADER, self.display_rows(), title=self.title, footer=[self.verdict],
                          notes=self._notes())

    def __repr__(self) -> str:
        return f"<CrossCheck agree={self.agree}: {self.verdict}>"

    def _repr_html_(self) -> str:
        return html_table(self.HEADER, self.display_rows(), align="lrrrl", caption=self.title,
                          footer=[self.verdict], notes=self._notes(), css_class="mmbook-crosscheck")


def _sm_fit(model, REML: bool, methods, fit_kwargs):
    """Fit with each optimizer in turn (warnings silenced); keep the best criterion.

    "Best" is the first optimizer, in the order given, whose criterion is
    within ``SAME_OPTIMUM_RTOL`` of the lowest: optimizers that reach the
    same optimum differ in the last digits, and which of them is lowest
    would otherwise depend on the machine.
    """
    fits, attempts = {}, {}
    for meth in methods:
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                res = model.fit(reml=REML, method=[meth], **fit_kwargs)
            crit = -2.0 * float(res.llf)
        except Exception as exc:  # an optimizer may fail; the others may not
            attempts[meth] = f"{type(exc).__name__}: {exc}"
            continue
        attempts[meth] = crit
        if np.isfinite(crit) and np.all(np.isfinite(res.fe_params)):
            fits[meth] = (res, crit)
    if not fits:
        return None, np.nan, None, attempts
    lowest = min(c for _, c in fits.values())
    meth = next(m for m, (_, c) in fits.items() if c <= lowest + SAME_OPTIMUM_RTOL * max(1.0, abs(lowest)))
    return fits[meth][0], fits[meth][1], meth, attempts


def _from_formula(tr: Translation):
    sm = require("statsmodels.api", "crosscheck")

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return sm.MixedLM.from_formula(tr.formula, tr.data, groups=tr.groups, re_formula=tr.re_formula,
                                       vc_formula=tr.vc_formula or None)


def _sm_model(fit, tr: Translation):
    """The statsmodels model, and the position of each of mmbook's fixed effects in its ``exog``.

    The fixed part is first written as a formula; if statsmodels (patsy) cannot evaluate it, or
    its columns are not lme4's (after translating the names), mmbook's ``X`` is used instead.
    """
    if not tr.fixed_from_X:
        try:
            model = _from_formula(tr)
            mapped = [r_column_name(n) for n in model.exog_names]
            if sorted(mapped) == sorted(fit.fixef.index):
                return model, [mapped.index(n) for n in fit.fixef.index]
            why = f"statsmodels' columns {list(model.exog_names)} are not lme4's"
        except Exception as exc:  # e.g. a transform patsy does not know
            why = f"statsmodels could not evaluate it ({type(exc).__name__})"
        tr.data = tr.data.copy()
        resp = tr.formula.split("~")[0].strip()
        tr.formula = f"{resp} ~ " + _add_X(tr.data, fit, set(map(str, tr.data.columns)))
        tr.fixed_from_X = True
        tr.notes.append(f"fixed part: mmbook's X, because {why}")
    try:
        return _from_formula(tr), list(range(fit.mf.p))
    except Exception as exc:  # patsy cannot read a name in the random part: say so, as for any other model
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise NotImplementedError(f"statsmodels could not build the model {tr} ({type(exc).__name__}: {first})") \
            from exc


def crosscheck(fit, methods=("lbfgs", "bfgs", "powell"), **fit_kwargs) -> CrossCheck:
    """Fit ``fit``'s model with statsmodels ``MixedLM`` and compare.

    **Translation** (:func:`translate`), in order:

    * **One grouping factor, or factors nested in one** (``(x | g)``,
      ``(1 | a/b)``, ``(1 | a) + (1 | a:b)``): the outermost factor is
      ``groups``. Its first vector-valued term (or its first term) is
      ``re_formula``, e.g. ``(Days | Subject)`` -> ``groups="Subject",
      re_formula="1 + Days"``; ``(0 + f | g)`` -> ``re_formula="0 + f"``.
    * **Uncorrelated terms on that factor** (``(1 | g) + (0 + x | g)``, what
      ``(x || g)`` expands to): ``re_formula="1"`` and a variance component
      ``vc_formula={"g.x": "0 + x"}``. (statsmodels could also fit
      ``re_formula="1 + x"`` with ``free=MixedLMParams`` holding the
      covariance at zero, but only its gradient optimizers respect ``free``;
      a variance component is the same model for every optimizer.)
    * **Factors nested in it** (``(1 | b:a)`` inside ``a``):
      ``vc_formula={"b:a": "0 + C(b_a)"}`` - one effect per level of
      ``b:a`` present in the group, with a common variance; a single-column
      slope ``(0 + x | b:a)`` becomes ``"0 + C(b_a):x"``.
    * **Crossed factors** (``(1 | subj) + (1 | item)``): one group holding
      every row (a column of ones) and a variance component per term, the
      standard trick; statsmodels then works with dense ``n x q`` matrices,
      fine for test-sized data.
    * **Not representable**: a vector-valued term on any other factor
      (``(x | subj) + (1 | item)`` crossed, ``(x | a/b)``) - statsmodels'
      variance components are scalar - raises ``NotImplementedError``.

    Grouping factors are passed as integer codes of mmbook's levels. The
    fixed part is the fit's fixed formula (statsmodels' column names,
    translated to R's, must be lme4's), or mmbook's ``X`` when lme4 dropped
    columns for rank deficiency or the formula does not carry over.

    **Scales.** statsmodels reports ``cov_re`` and ``vcomp`` on the data
    scale (its ``fit`` multiplies the profiled, ``sigma^2``-relative values
    by ``scale``), so they compare directly with mmbook's ``psi`` and
    ``scale`` with ``sigma^2``. The criterion on lme4's scale is
    ``-2 llf``: statsmodels' REML log-likelihood,

    .. math::  -2\\ell_R = \\log|V| + \\log|X'V^{-1}X| + (n-p)\\left(1 + \\log\\frac{2\\pi r^2}{n-p}\\right)

    with ``V`` relative to ``sigma^2``, is term by term lme4's REML
    criterion (``log|V| = log|L_theta|^2``, ``X'V^{-1}X = R_X R_X'``), and
    its ML log-likelihood is ``-deviance/2``. statsmodels uses REML exactly
    when ``fit`` does. As an independent check of the criterion itself,
    statsmodels' profiled likelihood is also evaluated at mmbook's ``theta``.

    **Optimizers.** Each of ``methods`` is run from statsmodels' default
    start, with its warnings silenced (they would otherwise land in notebook
    outputs); the lowest finite criterion is kept (statsmodels' optimizers
    sometimes stop early, or diverge to ``llf = inf``, which is discarded).

    Parameters
    ----------
    fit : LmerFit
    methods : sequence of str
        statsmodels optimizers to try, one after another from statsmodels'
        default start; the lowest criterion is kept.
    **fit_kwargs
        Passed to ``MixedLMResults.fit`` (e.g. ``maxiter``).

    Returns
    -------
    CrossCheck

    Raises
    ------
    NotImplementedError
        The model cannot be written for statsmodels (see :func:`translate`),
        or it has prior weights or an offset (statsmodels' ``MixedLM`` has
        neither).
    """
    if fit.mf.weights is not None or fit.mf.offset is not None:
        what = " and ".join(w for w, v in (("prior weights", fit.mf.weights), ("an offset", fit.mf.offset))
                            if v is not None)
        raise NotImplementedError(f"statsmodels' MixedLM cannot fit a model with {what}: no cross-check; "
                                  "the weighted and offset fits are tested against lme4 (tests/test_lmer_args.py)")
    tr = translate(fit)
    model, fe_index = _sm_model(fit, tr)
    terms = fit.terms
    sigma2 = fit.sigma ** 2

    # the correlated block: statsmodels' columns of exog_re -> the term's columns
    re_perm = None
    if tr.re_term is not None:
        z = terms[tr.re_term].z
        ex = np.asarray(model.exog_re, dtype=float)
        re_perm = []
        for j in range(z.shape[1]):
            hits = [i for i in range(ex.shape[1]) if np.allclose(ex[:, i], z[:, j])]
            if len(hits) != 1 or ex.shape[1] != z.shape[1]:
                raise RuntimeError(f"statsmodels' re_formula={tr.re_formula!r} does not reproduce the "
                                   f"columns {terms[tr.re_term].cnames} of ({terms[tr.re_term].bar.text})")
            re_perm.append(hits[0])
    vc_names = list(model.exog_vc.names)

    # statsmodels' criterion at mmbook's estimates (same relative covariances)
    not_compared = {}
    crit_name = "REML criterion" if fit.REML else "deviance (-2 logLik)"
    eval_name = f"{crit_name}, statsmodels at mmbook's theta"
    try:
        crit_at_mm = _sm_criterion_at(fit, tr, model, re_perm, vc_names)
        if not np.isfinite(crit_at_mm):
            not_compared[eval_name] = f"statsmodels' criterion is {crit_at_mm} there"
    except Exception as exc:  # statsmodels' own linear algebra; report it, do not hide it
        crit_at_mm = np.nan
        not_compared[eval_name] = f"statsmodels could not evaluate it ({type(exc).__name__}: {exc})"

    res, crit_sm, method, attempts = _sm_fit(model, fit.REML, methods, fit_kwargs)

    rows = [(crit_name, fit.objective, crit_sm, 1.0, "criterion"),
            (eval_name, fit.objective, crit_at_mm, 1.0, "evaluation")]
    se = np.sqrt(np.diag(fit.vcov.to_numpy()))
    fe_sm = np.asarray(res.fe_params)[fe_index] if res is not None else np.full(fit.mf.p, np.nan)
    for j, name in enumerate(fit.fixef.index):
        rows.append((name, fit.fixef.iloc[j], fe_sm[j], se[j], "estimate"))

    # variance components in the order of VarCorr
    names = fit.group_names
    for k, (t, grp) in enumerate(zip(terms, names)):
        vc = fit.vc_terms[k]  # a smooth's tau^2 once
        S, cn, q = vc.cov, vc.names, len(vc.names)
        Ssm = _sm_psi(res, tr, k, re_perm, vc_names, q)
        for i, c in enumerate(cn):
            rows.append((f"var {grp} {c}", S[i, i], Ssm[i, i], 1e-2 * sigma2, "estimate"))
        for j in range(q):
            for i in range(j + 1, q):
                sc = max(math.sqrt(max(S[i, i] * S[j, j], 0.0)), 1e-2 * sigma2)
                rows.append((f"cov {grp} {cn[j]}, {cn[i]}", S[i, j], Ssm[i, j], sc, "estimate"))
    rows.append(("var Residual", sigma2, float(res.scale) if res is not None else np.nan, sigma2, "estimate"))

    # conditional modes, matched by group and level
    b_mm, b_sm, why = _ranef_pairs(fit, tr, res, model, re_perm, vc_names)
    if b_mm.size:
        label = f"ranef (max |b| of {b_mm.size}; max |diff|)"
        if why:
            not_compared[label] = why
        ok = np.all(np.isfinite(b_sm))
        big = float(max(np.max(np.abs(b_mm)), np.max(np.abs(b_sm)) if ok else 0.0))
        rows.append((label, float(np.max(np.abs(b_mm))), float(np.max(np.abs(b_sm))) if ok else np.nan, big,
                     "ranef", float(np.max(np.abs(b_mm - b_sm))) if ok else np.nan))

    if res is None:
        why = "statsmodels failed to fit: " + "; ".join(f"{k}: {v}" for k, v in attempts.items())
        for r in rows:
            if r[4] != "evaluation":
                not_compared.setdefault(r[0], why)
    table = _table(rows, not_compared)
    est = table[table.kind.isin(["estimate", "ranef"])]
    max_rel = float(est.rel_diff.max()) if len(est) and est.rel_diff.notna().any() else 0.0
    crit_diff = fit.objective - crit_sm
    agree, verdict = _verdict(fit.objective, crit_sm, crit_at_mm, max_rel, res is not None, attempts)
    other = {q: w for q, w in not_compared.items() if res is not None or q == eval_name}
    if other:
        verdict += "; not compared: " + "; ".join(f"{q} ({w})" for q, w in other.items())
    return CrossCheck(table=table, criterion_diff=float(crit_diff), max_rel_diff=max_rel, agree=agree,
                      verdict=verdict, method=method, attempts=attempts, translation=tr, result=res,
                      REML=fit.REML, not_compared=not_compared)


_TOLERANCE = {"criterion": CRITERION_RTOL, "evaluation": EVAL_RTOL, "estimate": ESTIMATE_RTOL,
              "ranef": ESTIMATE_RTOL}


def _table(rows, not_compared) -> pd.DataFrame:
    """The comparison rows as :attr:`CrossCheck.table` (relative differences, tolerances, agreement)."""
    out = []
    for r in rows:
        label, a, b, scale, kind = r[:5]
        ad = r[5] if len(r) > 5 else abs(a - b)
        denom = max(abs(a), abs(b) if np.isfinite(b) else 0.0, scale)
        rd = ad / denom if denom > 0 else (0.0 if ad == 0 else np.inf)
        tol = _TOLERANCE[kind]
        agree = None if (label in not_compared or not np.isfinite(rd)) else bool(rd <= tol)
        out.append((label, float(a), float(b), float(ad), float(rd), float(scale), tol, agree, kind,
                    not_compared.get(label, "")))
    return pd.DataFrame(out, columns=["quantity", "mmbook", "statsmodels", "abs_diff", "rel_diff", "scale",
                                      "tolerance", "agree", "kind", "note"]).set_index("quantity")


def _sm_criterion_at(fit, tr, model, re_perm, vc_names) -> float:
    """statsmodels' profiled criterion (on lme4's scale) at mmbook's relative covariances."""
    MixedLMParams = require("statsmodels.regression.mixed_linear_model", "crosscheck").MixedLMParams

    sigma2 = fit.sigma ** 2
    k_re = model.k_re
    cov = np.zeros((k_re, k_re))
    if re_perm is not None:
        P = fit.psi(tr.re_term) / sigma2
        cov[np.ix_(re_perm, re_perm)] = P
    # statsmodels inverts cov_re and divides by vcomp: on the boundary (a singular
    # fit) raise the zero eigenvalues to 1e-8 (relative to sigma^2), which moves
    # the criterion by far less than EVAL_RTOL
    if k_re:
        w, V = np.linalg.eigh(cov)
        cov = (V * np.maximum(w, 1e-8)) @ V.T
    vc = np.array([max(fit.psi(tr.vc_terms[n])[0, 0] / sigma2, 1e-8) for n in vc_names])
    params = MixedLMParams.from_components(fe_params=np.zeros(model.k_fe), cov_re=cov, vcomp=vc)
    model.reml, model.cov_pen, model.fe_pen, model._cov_sing = fit.REML, None, None, 0  # as fit() sets
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return -2.0 * float(model.loglike(params, profile_fe=True))


def _sm_psi(res, tr, k, re_perm, vc_names, q) -> np.ndarray:
    """statsmodels' covariance of term ``k``'s random effects, in the term's column order."""
    if res is None:
        return np.full((q, q), np.nan)
    if k == tr.re_term:
        C = np.asarray(res.cov_re, dtype=float)
        return C[np.ix_(re_perm, re_perm)]
    name = next(n for n, kk in tr.vc_terms.items() if kk == k)
    return np.array([[float(np.asarray(res.vcomp)[vc_names.index(name)])]])


_LEVEL = re.compile(r"\[(?:T\.)?(-?\d+)\]")


def _ranef_pairs(fit, tr, res, model, re_perm, vc_names):
    """mmbook's and statsmodels' conditional modes as two aligned vectors, and why not (or "")."""
    b_mm = np.concatenate([g.ravel() for g in fit.gamma]) if fit.gamma else np.zeros(0)
    b_sm = np.full(b_mm.shape, np.nan)
    if res is None:
        return b_mm, b_sm, ""
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            re_dict = res.random_effects
    except Exception as exc:  # statsmodels' own linear algebra; reported in the table
        return b_mm, b_sm, f"statsmodels could not compute them ({type(exc).__name__}: {exc})"
    offsets = np.cumsum([0] + [g.size for g in fit.gamma])
    terms = fit.terms
    for gi, label in enumerate(model.group_labels):
        vals = np.asarray(re_dict[label], dtype=float)
        pos = 0
        if re_perm is not None:
            t = terms[tr.re_term]
            lev = int(label)
            for j, i in enumerate(re_perm):
                b_sm[offsets[tr.re_term] + lev * t.q + j] = vals[i]
            pos = len(re_perm)
        for vi, name in enumerate(vc_names):
            k = tr.vc_terms[name]
            cols = model.exog_vc.colnames[vi][gi]
            for j, c in enumerate(cols):
                # a component on the outer factor has one column per group; nested or
                # crossed ones name the level's code: "C(b_a)[3]", "C(subj)[3]:x"; a smooth's
                # columns are its random effects in order
                if terms[k].structure == "identity":
                    lev = j
                else:
                    lev = int(label) if terms[k].group == tr.top else int(_LEVEL.search(c).group(1))
                b_sm[offsets[k] + lev] = vals[pos]
                pos += 1
    return b_mm, b_sm, ""


def _verdict(crit_mm, crit_sm, crit_at_mm, max_rel, fitted, attempts):
    """(agree, verdict): the cases of :attr:`CrossCheck.agree`, in words that do not print
    statsmodels' last digits (they move with where its optimizer stops)."""
    if not fitted:
        return False, ("not compared: statsmodels failed to fit ("
                       + "; ".join(f"{k}: {v}" for k, v in attempts.items()) + ")")
    scale = max(1.0, abs(crit_mm))
    if np.isfinite(crit_at_mm) and abs(crit_at_mm - crit_mm) > EVAL_RTOL * scale:
        return False, (f"disagree: statsmodels' criterion at mmbook's estimates is {crit_at_mm:.6f}, "
                       f"mmbook's is {crit_mm:.6f}")
    d = crit_mm - crit_sm
    if abs(d) <= CRITERION_RTOL * scale and max_rel <= ESTIMATE_RTOL:
        return True, (f"agree: criteria within {CRITERION_RTOL:.0e} (relative), "
                      f"estimates within {ESTIMATE_RTOL:.0e}")
    if d <= TINY_REL * scale:
        how = (f"its criterion is higher than mmbook's by more than {CRITERION_RTOL:.0e} (relative)"
               if -d > CRITERION_RTOL * scale else
               f"its criterion is within {CRITERION_RTOL:.0e} of mmbook's, not lower, and its estimates "
               f"differ by more than {ESTIMATE_RTOL:.0e}")
        return True, f"agree: statsmodels stopped short of the optimum ({how}); mmbook's estimates are the better fit"
    return False, f"disagree: mmbook's criterion is higher than statsmodels' by {d:.2e}"


def gls_crosscheck(fit) -> pd.DataFrame:
    """The fixed effects of a fit with correlated residuals against statsmodels' ``GLS`` at the fitted ``Sigma``.

    statsmodels' ``MixedLM`` has no residual correlation, so the check is
    conditional on the variance parameters: given the fitted marginal
    covariance

    .. math:: \\Sigma = Z \\psi_{\\text{big}} Z^\\top + \\sigma^2 R(\\hat\\phi),

    the fixed effects are the generalized least squares estimate
    ``(X' Sigma^{-1} X)^{-1} X' Sigma^{-1} y`` and their covariance
    ``(X' Sigma^{-1} X)^{-1}``, which ``statsmodels.api.GLS(y, X,
    sigma=Sigma)`` computes (``params``, ``normalized_cov_params``) without
    any of mmbook's machinery (no whitening by clusters, no penalized least
    squares). ``Sigma`` is dense: for data of a few thousand rows.

    Parameters
    ----------
    fit : LmerFit or GlsFit
        For a :class:`mmbook.engine.gls.GlsFit`, ``Sigma = s^2 R`` with
        nlme's ``s^2 = r^2 / (n - p)`` (the scale of its ``vcov``).

    Returns
    -------
    DataFrame indexed by the fixed effects, columns ``mmbook``,
    ``statsmodels``, ``abs_diff``, ``se_mmbook``, ``se_statsmodels``,
    ``se_rel_diff``.
    """
    import statsmodels.api as sm

    from .forms.marginal import marginal_cov

    if hasattr(fit, "terms"):
        Sigma = marginal_cov(fit)
        se_mm = fit.stderror.to_numpy()
        beta = fit.fixef.to_numpy()
    else:  # a GlsFit
        s2 = fit.pwrss / (fit.nobs - fit.mf.p)
        Sigma = s2 * fit.corr.full_matrix(fit.eta).toarray()
        se_mm = fit.stderror.to_numpy()
        beta = fit.coef.to_numpy()
    res = sm.GLS(fit.mf.y, fit.mf.X, sigma=Sigma).fit()
    se_sm = np.sqrt(np.diag(res.normalized_cov_params))
    names = list(fit.mf.xnames)
    return pd.DataFrame({"mmbook": beta, "statsmodels": np.asarray(res.params), "abs_diff": np.abs(beta - res.params),
                         "se_mmbook": se_mm, "se_statsmodels": se_sm,
                         "se_rel_diff": np.abs(se_mm - se_sm) / se_sm}, index=names)
