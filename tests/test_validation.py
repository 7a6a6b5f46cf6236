"""The registry of reference fits (mmbook/validation) and mmbook validated against it.

Reference: mmbook/validation/registry.json.xz, written by mmbook/validation/make_registry.R with
R 4.2.2, lme4 1.1-31, Matrix and nlme 3.1-162 (versions in the file's `source`): lme4's results
for every model the book fits and lme4's standard models, with its default settings and at the
optimum itself (bobyqa to rhoend = 1e-12). The tolerances are argued in
mmbook/validation/records.py (TOLERANCES, SCALES).

`mmbook validate` on the whole registry runs here (test_whole_registry_passes), so `make test`
runs it. It takes about 12 s; the largest fit is InstEval's crossed model (73,421 rows, 4,100
random effects, ~5 s), kept in the default run.
"""

import copy
import glob
import json
import re
from pathlib import Path

import pytest

from mmbook import validation
from mmbook.validation import records

ROOT = Path(__file__).resolve().parents[1]
ENTRIES = {e.name: e for e in validation.registry()}
# Entries known to fail, with the reason (strict: an entry that passes again fails its test and must go).
# Empty: cake_ordered_REML (an ordered factor, contr.poly) passes since R's contrasts landed.
KNOWN: dict = {}


def test_registry_made_by_lme4_1_1_31():
    raw = validation._raw()
    assert raw["schema"] == "mmbook-registry/1"
    assert "R version 4.2.2" in raw["source"] and "lme4 1.1.31" in raw["source"]
    assert len(ENTRIES) == len(raw["models"])  # names are unique


def test_registry_covers_the_structures_the_issue_lists():
    s = " ".join(e.structure for e in ENTRIES.values())
    for kind in ("random intercepts", "slopes", "nested", "crossed", "singular"):
        assert kind in s, kind
    methods = {e.method for e in ENTRIES.values()}
    assert {"REML", "ML"} <= methods
    assert {e.data for e in ENTRIES.values()} >= {"sleepstudy", "Dyestuff", "Dyestuff2", "Penicillin", "Pastes",
                                                  "cake", "Orthodont", "Machines", "ergoStool", "Rail", "Oats",
                                                  "InstEval", "sim_ri", "sim_ris"}
    assert {e.kind for e in ENTRIES.values()} == {"lmer", "glmer"}


def _call_arguments(source: str, open_paren: int) -> str:
    """The text between the parenthesis at ``open_paren`` and its match (to the end if unbalanced)."""
    depth = 0
    for i in range(open_paren, len(source)):
        depth += {"(": 1, ")": -1}.get(source[i], 0)
        if depth == 0:
            return source[open_paren + 1:i]
    return source[open_paren + 1:]


# Models lme4 cannot fit, so the registry cannot hold them: smooth terms s(x, ...) (penalized
# splines, checked against mgcv) and lmer(..., residual=...) with AR(1) or other residual
# structures (checked against nlme). Their reference numbers live with those tests, not here.
SMOOTH_TERM = re.compile(r"(?<![\w.])s\(")
RESIDUAL_ARGUMENT = re.compile(r"\bresidual\s*=")


def _book_lmer_formulas(sources=None):
    """Every lmer("...")/glmer("...") formula written out in a chapter, less what lme4 cannot fit."""
    if sources is None:
        sources = []
        for path in glob.glob(str(ROOT / "book" / "*.ipynb")):
            nb = json.loads(Path(path).read_text())
            sources += ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    out = set()
    for source in sources:
        for m in re.finditer(r'lmer(\()"([^"]+)"', source):
            formula, arguments = m.group(2), _call_arguments(source, m.start(1))
            if SMOOTH_TERM.search(formula) or RESIDUAL_ARGUMENT.search(arguments):
                continue
            out.add(formula)
    return out


def test_coverage_skips_only_what_lme4_cannot_fit():
    cells = ['f = mmbook.lmer("y ~ x + (1 | g)", d)\n'
             'g = mmbook.lmer("y ~ s(x, k=10) + (1 | g)", d)\n'
             'h = mmbook.lmer("y ~ t + (1 | g)", d,\n    residual=mmbook.ar1("t", "g"))\n'
             'k = mmbook.glmer("y ~ x + offset(log(t)) + (x | g)", d, family="poisson")\n'
             'q = mmbook.lmer("y ~ bs(x) + (1 | g)", f(d), REML=False)']
    assert _book_lmer_formulas(cells) == {"y ~ x + (1 | g)", "y ~ x + offset(log(t)) + (x | g)",
                                          "y ~ bs(x) + (1 | g)"}


def test_every_model_the_book_fits_is_registered():
    book = {e.formula for e in ENTRIES.values() if e.origin == "book"}
    # smooth terms s(x) are not lme4's (their reference is mgcv: tests/test_smooth.py)
    missing = {f for f in _book_lmer_formulas() - book if not re.search(r"(^|[\s+~])s\(", f)}
    assert not missing, f"chapters fit models the registry does not hold: {missing} (add them to make_registry.R)"


def test_default_and_tight_fits_stored():
    e = ENTRIES["sleepstudy_slope_REML"]
    d, t = e.lme4["default"], e.lme4["tight"]
    # lme4's default stops short: 612.100 by default, 612.090 at the optimum (the applied chapter)
    assert round(d["varcorr"]["vcov"][0], 2) == 612.10 and round(t["varcorr"]["vcov"][0], 2) == 612.09
    assert t["criterion"] <= d["criterion"]
    assert "ranef" in t and "ranef" not in d
    assert t["theta_names"] == ["Subject.(Intercept)", "Subject.Days.(Intercept)", "Subject.Days"]


def test_whole_registry_passes():
    """`mmbook validate` on every entry: each entry passes (GLMMs at glmer's tolerances, see records.py)."""
    v = validation.validate([n for n in ENTRIES if n not in KNOWN])
    failed = {r.entry.name: r.message for r in v.results if r.status == "fail"}
    assert not failed, failed
    assert v.passed
    for r in v.results:
        assert r.status == "pass", (r.entry.name, r.message)


@pytest.mark.parametrize("name", sorted(KNOWN) or [pytest.param(None, marks=pytest.mark.skip(reason="none"))])
def test_known_failures(name):
    r = validation.validate([name]).results[0]
    if r.status == "fail":
        pytest.xfail(KNOWN[name])
    pytest.fail(f"{name} passes now: remove it from KNOWN ({KNOWN[name]})")


def test_validation_table_is_pass_fail_only():
    v = validation.validate(["Dyestuff_REML", "Dyestuff2_REML", "cbpp_binomial"])
    text = str(v).splitlines()
    assert text[0] == "mmbook vs lme4 1.1-31: the registry"
    assert text[2].split() == ["Dyestuff_REML", "REML"] + ["ok"] * 7 + ["pass"]
    assert text[4].split()[-1] == "pass"
    assert "3 passed, 0 failed, 0 skipped of 3." in text
    assert not re.search(r"\de-\d\d(?! of)", " ".join(text[:5]))  # no raw differences in the table
    j = v.to_json()
    assert j["schema"] == "mmbook-validation/1" and j["counts"] == {"pass": 3, "fail": 0, "skipped": 0}
    assert j["results"][0]["worst"]["criterion"] < records.TOLERANCES["criterion"]
    assert "<table" in v._repr_html_()


def test_validate_selects_by_data_set_and_rejects_unknown_names():
    assert [r.entry.name for r in validation.validate(["Rail"]).results] == ["Rail_REML", "Rail_ML"]
    with pytest.raises(KeyError, match="no registry entry or data set named 'Raill'"):
        validation.validate(["Raill"])


def test_changed_data_fail_with_a_reason(monkeypatch):
    real = validation.frame

    def shifted(name):
        d = real(name)
        d["travel"] = d["travel"] + 1e-6
        return d

    monkeypatch.setattr(validation, "frame", shifted)
    r = validation.validate(["Rail_REML"]).results[0]
    assert r.status == "fail" and r.message.startswith("data differ from those lme4 fitted: Rail.travel: sum")


# --------------------------------------------------------------------------- compare()
@pytest.fixture(scope="module")
def sleep_record():
    import mmbook

    return records.fit_record(mmbook.lmer("Reaction ~ Days + (Days | Subject)", mmbook.load_sleepstudy()))


def test_record_matches_registry_layout(sleep_record):
    ref = ENTRIES["sleepstudy_slope_REML"].lme4["tight"]
    assert set(ref) - {"optimizer", "feval"} <= set(sleep_record)
    assert sleep_record["theta_names"] == ref["theta_names"]
    assert sleep_record["varcorr"]["grp"] == ref["varcorr"]["grp"]
    assert sleep_record["varcorr"]["var2"] == ref["varcorr"]["var2"]
    assert records.compare(sleep_record, ref, default=ENTRIES["sleepstudy_slope_REML"].lme4["default"]).ok


@pytest.mark.parametrize("quantity,edit", [
    ("theta", lambda r: r["theta"].__setitem__(0, r["theta"][0] * (1 + 1e-3))),
    ("fixef", lambda r: r["fixef"].__setitem__("Days", r["fixef"]["Days"] + 1e-3)),
    ("sigma", lambda r: r.__setitem__("sigma", r["sigma"] * (1 + 1e-4))),
    ("varcorr", lambda r: r["varcorr"]["vcov"].__setitem__(2, r["varcorr"]["vcov"][2] + 1.0)),
    ("ranef", lambda r: r["ranef"]["Subject"]["values"]["Days"].__setitem__(3, 0.0)),
    ("criterion", lambda r: r.__setitem__("criterion", r["criterion"] + 1e-5)),
])
def test_compare_catches_each_quantity(sleep_record, quantity, edit):
    rec = copy.deepcopy(sleep_record)
    edit(rec)
    c = records.compare(rec, ENTRIES["sleepstudy_slope_REML"].lme4["tight"])
    assert not c.ok and not c.passed[quantity]
    assert all(ok for q, ok in c.passed.items() if q != quantity)


def test_compare_reports_structure_and_a_worse_criterion(sleep_record):
    e = ENTRIES["sleepstudy_slope_REML"]
    rec = copy.deepcopy(sleep_record)
    rec["fixef"] = {"(Intercept)": 1.0}
    rec["criterion"] = e.lme4["default"]["criterion"] + 1e-3
    c = records.compare(rec, e.lme4["tight"], default=e.lme4["default"])
    assert any(p.startswith("fixef: columns") for p in c.problems)
    assert any("above lme4's default fit" in p for p in c.problems)
