"""mmbook.rprint: one set of R printing rules for every summary.

Reference: R 4.2.2 / lme4 1.1-31 printing sleepstudy with Days scaled by 1e6
(tests/data/rprint_lmer_scaled.txt and rprint_lm_scaled.txt, written by tests/data/make_rprint.R).
At that scale R's formatReal switches the estimates to scientific notation; lm and lmer must agree
with R, and so with each other.
"""

import warnings
from pathlib import Path

import numpy as np
import pytest

import mmbook
from mmbook.rprint import coef_matrix_cells, format_pval, format_real, zapsmall

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def scaled():
    d = mmbook.load_sleepstudy()
    d["Days"] = d["Days"] * 1e6
    return d


def _block(lines, start, stop):
    i = lines.index(start)
    j = next(k for k in range(i + 1, len(lines)) if lines[k].startswith(stop) or lines[k] == "")
    return lines[i:j]


def test_lmer_fixed_effects_scientific_as_r(scaled):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lme4's scale message is information here
        fit = mmbook.lmer("Reaction ~ Days + (1 | Subject)", scaled)
    ours = [s.rstrip() for s in str(fit).splitlines()]
    theirs = [s.rstrip() for s in (DATA / "rprint_lmer_scaled.txt").read_text().splitlines()]
    assert _block(ours, "Fixed effects:", "Correlation") == _block(theirs, "Fixed effects:", "Correlation")
    assert _block(ours, "Random effects:", "Number") == _block(theirs, "Random effects:", "Number")


def test_lm_coefficients_scientific_as_r(scaled):
    ours = [s.rstrip() for s in str(mmbook.lm("Reaction ~ Days", scaled)).splitlines()]
    theirs = [s.rstrip() for s in (DATA / "rprint_lm_scaled.txt").read_text().splitlines()]
    assert _block(ours, "Coefficients:", "---") == _block(theirs, "Coefficients:", "---")


def test_format_real_fixed_or_scientific():
    # R: format(c(251.4, 1.047e-05), digits = 4) -> "2.514e+02" "1.047e-05"; format(c(1.5, 10), digits=4)
    assert format_real([251.4, 1.047e-05], 4) == ["2.514e+02", "1.047e-05"]
    assert format_real([1.5, 10.0], 4) == [" 1.5", "10.0"]
    assert format_real([0.07], 7, nsmall=2) == ["0.07"]
    assert format_real([0.5], 7, nsmall=2) == ["0.50"]
    assert format_real([np.nan, 1.0], 3) == ["NA", " 1"]


def test_zapsmall_and_pval():
    # R: zapsmall(c(1, 1e-20), 7) -> 1 0 ; format.pval(c(0.5, 1e-20), digits = 3) -> "0.5" "<2e-16"
    assert zapsmall([1.0, 1e-20], 7).tolist() == [1.0, 0.0]
    assert [s.strip() for s in format_pval([0.5, 1e-20], 3)] == ["0.5", "<2e-16"]


def test_coef_matrix_without_p_values_has_no_stars():
    rows, stars = coef_matrix_cells(np.array([[251.405, 6.8246, 36.838], [10.467, 1.5458, 6.771]]), 4,
                                    has_p=False)
    assert not stars
    assert rows == [["251.405", "6.825", "36.838"], ["10.467", "1.546", "6.771"]]
