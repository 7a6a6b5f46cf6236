"""The registry of reference fits, and mmbook validated against it.

``registry.json.xz`` (xz-compressed JSON, written by ``make_registry.R``)
holds lme4 1.1-31's results for every model the book fits and for lme4's
standard models on the classic data sets (:mod:`mmbook.datasets`): random
intercepts, slopes, nested, crossed, singular fits, ML and REML, a
polynomial-contrast factor, and GLMMs. Its layout (schema
``mmbook-registry/1``)::

    {"schema": "mmbook-registry/1", "source": "...R and package versions...",
     "tight_control": "...",
     "frames": {data name: {"rows": n, "checksum": {column: {"sum", "sumsq"} | {"counts"}}}},
     "models": [{"name", "data", "formula", "kind": "lmer" | "glmer", "REML", "family", "nAGQ",
                 "origin": "book" | "lme4" | "nlme", "chapters", "structure", "note",
                 "lme4": {"default": record, "tight": record}}]}

where a *record* is a fit record (:mod:`mmbook.validation.records`): the
criterion, logLik, theta, fixef, vcov, sigma, VarCorr and (for ``tight``)
the conditional modes, at full precision. ``default`` is what lme4 returns
with its default settings; ``tight`` is lme4 restarted from there with
bobyqa run to ``rhoend = 1e-12``, the optimum itself (where the default
stops short, as on sleepstudy, the two differ at the fifth digit of a
variance). mmbook is compared with ``tight`` and must not end above
``default``.

:func:`validate` fits every entry with mmbook and compares
(:func:`mmbook.validation.records.compare`); ``mmbook validate`` on the
command line prints its table.

Extension point for GLMMs: entries of kind ``"glmer"`` carry lme4's
``glmer`` results (Laplace approximation, ``nAGQ = 1``, or adaptive
Gauss-Hermite quadrature with ``nAGQ`` points; criterion ``-2 logLik``). They are fitted when ``mmbook.glmer(formula, data,
family=..., nAGQ=...)`` exists and returns a fit with the accessors of
:func:`mmbook.validation.records.fit_record`; until then they are reported
as skipped, never as passed.
"""

from __future__ import annotations

import importlib
import json
import lzma
import math
import time
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import pandas as pd

from ..tables import html_table, text_table
from .frames import checksum, frame, frame_names
from .records import CRITERION_SLACK, GLMM_TOLERANCES, SCALES, TOLERANCES, Comparison, compare, fit_record

__all__ = ["registry", "Entry", "validate", "Validation", "frame", "frame_names", "fit_record", "compare",
           "TOLERANCES", "SCALES", "QUANTITIES"]

QUANTITIES = ("criterion", "theta", "fixef", "sigma", "vcov", "varcorr", "ranef")
FRAME_RTOL = 1e-12  # a frame rebuilt here may differ from the one lme4 fitted in the last bits only


@dataclass(frozen=True)
class Entry:
    """One model of the registry (see the module docstring for the fields)."""

    name: str
    data: str
    formula: str
    kind: str
    REML: bool | None
    family: str | None
    nAGQ: int | None
    origin: str
    chapters: tuple
    structure: str
    note: str
    lme4: dict = field(repr=False, compare=False)

    @property
    def method(self) -> str:
        if self.kind == "glmer":
            return f"{self.family} (Laplace)" if self.nAGQ in (None, 1) else f"{self.family} (nAGQ = {self.nAGQ})"
        return "REML" if self.REML else "ML"


@lru_cache(maxsize=1)
def _raw() -> dict:
    with resources.files(__name__).joinpath("registry.json.xz").open("rb") as fh:
        return json.loads(lzma.decompress(fh.read()).decode())


def registry() -> list[Entry]:
    """Every model of the registry, in the file's order (the book's models first)."""
    out = []
    for m in _raw()["models"]:
        out.append(Entry(name=m["name"], data=m["data"], formula=m["formula"], kind=m["kind"],
                         REML=m["REML"], family=m["family"], nAGQ=m["nAGQ"], origin=m["origin"],
                         chapters=tuple(m["chapters"] or ()), structure=m["structure"], note=m["note"],
                         lme4=m["lme4"]))
    return out


def registry_source() -> str:
    """Which R, lme4, Matrix and nlme made the registry."""
    return _raw()["source"]


def _frame_problem(name: str, d: pd.DataFrame) -> str:
    """Empty when ``d`` is the frame lme4 fitted (R's checksums); else what differs."""
    ref = _raw()["frames"].get(name)
    if ref is None:
        return f"the registry has no checksum of {name!r}"
    if len(d) != ref["rows"]:
        return f"{name} has {len(d)} rows here, {ref['rows']} in lme4's fit"
    mine = checksum(d)
    for col, r in ref["checksum"].items():
        m = mine.get(col)
        if m is None:
            return f"{name} has no column {col!r} here"
        if "counts" in r:
            got = list(m["counts"].values()) if "counts" in m else None
            if got != list(r["counts"]):
                return f"{name}.{col}: the rows per label differ from the frame lme4 fitted"
        else:
            for key in ("sum", "sumsq"):
                if key not in m or abs(m[key] - r[key]) > FRAME_RTOL * max(1.0, abs(r[key])):
                    return f"{name}.{col}: {key} {m.get(key)!r} here, {r[key]!r} in the frame lme4 fitted"
    return ""


def _fit_lmer(entry: Entry, data: pd.DataFrame):
    from ..engine.pipeline import lmer

    return lmer(entry.formula, data, REML=bool(entry.REML))


def _fit_glmer(entry: Entry, data: pd.DataFrame):
    """The GLMM extension point: ``mmbook.glmer`` when it exists, else ``None`` (skipped)."""
    glmer = getattr(importlib.import_module("mmbook"), "glmer", None)
    if glmer is None:
        return None
    return glmer(entry.formula, data, family=entry.family, nAGQ=entry.nAGQ)


FITTERS = {"lmer": _fit_lmer, "glmer": _fit_glmer}


@dataclass
class Result:
    """One entry validated: ``status`` is ``"pass"``, ``"fail"`` or ``"skipped"``."""

    entry: Entry
    status: str
    comparison: Comparison | None = None
    record: dict | None = None
    message: str = ""
    seconds: float = 0.0


def validate_entry(entry: Entry) -> Result:
    """Fit one registry entry with mmbook and compare it with lme4's stored results."""
    t0 = time.perf_counter()
    try:
        data = frame(entry.data)
    except KeyError as exc:
        return Result(entry, "fail", message=str(exc.args[0]))
    problem = _frame_problem(entry.data, data)
    if problem:
        return Result(entry, "fail", message=f"data differ from those lme4 fitted: {problem}")
    fitter = FITTERS.get(entry.kind)
    if fitter is None:
        return Result(entry, "skipped", message=f"no fitter for kind {entry.kind!r}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # singular fits warn, as lme4 does; the record keeps the messages
            fit = fitter(entry, data)
    except Exception as exc:  # reported as this entry's failure, not raised: the others still run
        return Result(entry, "fail", message=f"{type(exc).__name__}: {exc}", seconds=time.perf_counter() - t0)
    if fit is None:
        return Result(entry, "skipped", message=f"mmbook has no {entry.kind} yet")
    record = fit_record(fit)
    cmp = compare(record, entry.lme4["tight"], default=entry.lme4["default"],
                  tolerances=GLMM_TOLERANCES if entry.kind == "glmer" else None)
    status = "pass" if cmp.ok else "fail"
    msg = "; ".join(cmp.problems + [f"{q}: {cmp.where[q]} differs by {cmp.worst[q]:.2e} (tolerance "
                                    f"{cmp.tolerances[q]:.0e})" for q in QUANTITIES if not cmp.passed.get(q, True)])
    return Result(entry, status, cmp, record, msg, time.perf_counter() - t0)


@dataclass
class Validation:
    """The registry validated: one :class:`Result` per entry, with a pass/fail table.

    The printed table says, per entry and quantity, whether mmbook agrees
    with lme4's optimum within the stated tolerance; the exact largest
    differences are in :meth:`frame` and :meth:`to_json` (their digits move
    with the BLAS and the optimizer's last steps, so they are not printed).
    """

    results: list

    @property
    def passed(self) -> bool:
        """No entry failed (skipped entries do not count as failures)."""
        return all(r.status != "fail" for r in self.results)

    def counts(self) -> dict:
        out = {"pass": 0, "fail": 0, "skipped": 0}
        for r in self.results:
            out[r.status] += 1
        return out

    def frame(self) -> pd.DataFrame:
        """One row per entry: status, and for each quantity the largest scaled relative difference."""
        rows = []
        for r in self.results:
            row = {"name": r.entry.name, "data": r.entry.data, "formula": r.entry.formula,
                   "method": r.entry.method, "status": r.status}
            for q in QUANTITIES:
                row[q] = r.comparison.worst.get(q, math.nan) if r.comparison else math.nan
            row["message"] = r.message
            rows.append(row)
        return pd.DataFrame(rows).set_index("name")

    HEADER = ("model", "method", *QUANTITIES, "result")

    def __repr__(self) -> str:
        c = self.counts()
        return f"<Validation: {c['pass']} passed, {c['fail']} failed, {c['skipped']} skipped of {len(self.results)}>"

    def display_rows(self) -> list:
        rows = []
        for r in self.results:
            if r.comparison is None:
                cells = ["-"] * len(QUANTITIES)
            else:
                cells = [("ok" if r.comparison.passed[q] else "FAIL") if q in r.comparison.passed else "-"
                         for q in QUANTITIES]
            rows.append((r.entry.name, r.entry.method, *cells,
                         {"pass": "pass", "fail": "FAIL", "skipped": "skipped"}[r.status]))
        return rows

    def _notes(self) -> list:
        c = self.counts()
        lines = [f"{c['pass']} passed, {c['fail']} failed, {c['skipped']} skipped of {len(self.results)}."]
        for r in self.results:
            if r.status != "pass" and r.message:
                lines.append(f"{r.entry.name}: {r.message}")
        return lines

    def _tolerances(self) -> str:
        return ("Against lme4 1.1-31 at its optimum (bobyqa to rhoend = 1e-12); relative tolerances: "
                + "; ".join(f"{q} {TOLERANCES[q]:.0e} of {SCALES[q]}" for q in QUANTITIES)
                + f". mmbook's criterion may not exceed lme4's default fit's by more than {CRITERION_SLACK:.0e}"
                " (relative). GLMMs, where glmer's own optimum is less exact: "
                + "; ".join(f"{q} {t:.0e}" for q, t in GLMM_TOLERANCES.items()) + ".")

    def __str__(self) -> str:
        return text_table(self.HEADER, self.display_rows(), title="mmbook vs lme4 1.1-31: the registry",
                          footer=self._notes(), notes=[self._tolerances()])

    def _repr_html_(self) -> str:
        return html_table(self.HEADER, self.display_rows(), align="ll" + "r" * len(QUANTITIES) + "l",
                          caption="mmbook vs lme4 1.1-31: the registry", footer=self._notes(),
                          notes=[self._tolerances()], css_class="mmbook-validation")

    def to_json(self) -> dict:
        """A JSON-ready summary (schema ``mmbook-validation/1``): per entry the status, the largest
        difference and where for each quantity, and the tolerances."""
        from .. import __version__

        return {
            "schema": "mmbook-validation/1",
            "mmbook_version": __version__,
            "registry_source": registry_source(),
            "tolerances": dict(TOLERANCES), "scales": dict(SCALES), "criterion_slack": CRITERION_SLACK,
            "counts": self.counts(), "passed": self.passed,
            "results": [{"name": r.entry.name, "data": r.entry.data, "formula": r.entry.formula,
                         "method": r.entry.method, "status": r.status, "message": r.message,
                         "worst": dict(r.comparison.worst) if r.comparison else {},
                         "where": dict(r.comparison.where) if r.comparison else {}}
                        for r in self.results],
        }


def validate(names=None) -> Validation:
    """Fit registry entries with mmbook and compare them with lme4's stored results.

    Parameters
    ----------
    names : sequence of str, optional
        Entry names (default: every entry). Each may also be a data set's
        name, selecting every entry on it.

    Raises
    ------
    KeyError
        A name that is neither an entry nor a data set of the registry.
    """
    entries = registry()
    if names:
        chosen = []
        for n in names:
            hits = [e for e in entries if e.name == n] or [e for e in entries if e.data == n]
            if not hits:
                raise KeyError(f"no registry entry or data set named {n!r}; entries: "
                               + ", ".join(e.name for e in entries))
            chosen += [e for e in hits if e not in chosen]
        entries = chosen
    return Validation([validate_entry(e) for e in entries])
