"""The command line (mmbook/cli.py): every verb, every kind of error, the JSON fit record.

Most tests call mmbook.cli.main(argv) and read what it prints; two run `python -m mmbook` in a
subprocess to check the real entry point (exit status, stderr, no traceback). Reference numbers:
lme4 1.1-31's REML criterion of Reaction ~ Days + (Days | Subject) on sleepstudy at its optimum,
from the registry (mmbook/validation/registry.json.xz, made by make_registry.R).
"""

import importlib
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mmbook import cli, datasets, validation

ROOT = Path(__file__).resolve().parents[1]
SLOPES = "Reaction ~ Days + (Days | Subject)"
TIGHT = {e.name: e for e in validation.registry()}["sleepstudy_slope_REML"].lme4["tight"]


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(code, err, pattern):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mmbook: error: "), err
    assert pattern in lines[0], lines[0]
    assert "Traceback" not in err


# --------------------------------------------------------------------------- fit
def test_fit_prints_lme4_summary(capsys):
    code, out, err = run(capsys, "fit", "sleepstudy", SLOPES)
    assert code == 0 and err == ""
    assert out.splitlines()[0] == "Linear mixed model fit by REML ['lmerMod']"
    assert "REML criterion at convergence: 1743.6" in out


def test_fit_json_record(capsys, tmp_path):
    code, out, err = run(capsys, "fit", "sleepstudy", SLOPES, "--json")
    assert code == 0
    rec = json.loads(out)
    assert rec["schema"] == "mmbook-fit/1" and rec["REML"] is True and rec["family"] is None
    assert rec["data"]["kind"] == "dataset" and rec["data"]["rows"] == 180
    assert rec["criterion_name"] == "REML criterion"
    est = rec["estimates"]
    assert abs(est["criterion"] - TIGHT["criterion"]) < 1e-8 * TIGHT["criterion"]
    assert est["theta_names"] == TIGHT["theta_names"] and len(est["theta"]) == 3
    assert list(est["fixef"]) == ["(Intercept)", "Days"] and len(est["vcov"]) == 2
    assert set(est["ranef"]["Subject"]["values"]) == {"(Intercept)", "Days"}
    assert rec["control"]["ftol"] == 1e-12 and rec["optimizer"]["converged"] is True


def test_fit_ml_and_control_flags(capsys):
    code, out, _ = run(capsys, "fit", "sleepstudy", SLOPES, "--ml", "--json", "--control", "ftol=1e-14",
                       "--control", "polish=false", "--control", "blas_threads=none")
    rec = json.loads(out)
    assert code == 0 and rec["REML"] is False and rec["criterion_name"] == "deviance"
    assert rec["control"]["ftol"] == 1e-14 and rec["control"]["polish"] is False
    assert rec["control"]["blas_threads"] is None


def test_fit_reads_csv_and_parquet(capsys, tmp_path):
    d = datasets.load("Orthodont")
    d.to_csv(tmp_path / "o.csv", index=False)
    d.to_parquet(tmp_path / "o.parquet")
    crits = []
    for name in ("o.csv", "o.parquet"):
        code, out, _ = run(capsys, "fit", str(tmp_path / name), "distance ~ age + (age | Subject)", "--json")
        rec = json.loads(out)
        assert code == 0 and rec["data"]["kind"] == "file" and rec["data"]["rows"] == 108
        crits.append(rec["estimates"]["criterion"])
    assert crits[0] == pytest.approx(crits[1], rel=1e-12)


def test_fit_warnings_go_to_stderr(capsys):
    code, out, err = run(capsys, "fit", "Dyestuff2", "Yield ~ 1 + (1 | Batch)")
    assert code == 0 and "boundary (singular) fit" in out
    assert err.startswith("warning: boundary (singular) fit")


def test_glmer_flag_fits_a_glmm(capsys):
    # lme4 1.1-31: summary(glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial))
    code, out, err = run(capsys, "fit", "cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)",
                         "--glmer", "binomial")
    assert code == 0, err
    assert out.startswith("Generalized linear mixed model fit by maximum likelihood (Laplace\n  Approximation) [glmerMod]")
    assert " Family: binomial  ( logit )" in out


def test_glmer_unknown_family_is_one_error_line(capsys):
    code, out, err = run(capsys, "fit", "cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)",
                         "--glmer", "gamma-ish")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "gamma-ish" in err


# --------------------------------------------------------------------------- recheck
def test_recheck_reproduces_the_record(capsys, tmp_path):
    _, out, _ = run(capsys, "fit", "sleepstudy", SLOPES, "--json")
    path = tmp_path / "fit.json"
    path.write_text(out)
    code, out, _ = run(capsys, "recheck", str(path))
    assert code == 0
    assert out.splitlines()[-1] == "recheck: the record is reproduced at its theta"
    assert "criterion match" in out.replace("  ", " ")


def test_recheck_detects_a_changed_record(capsys, tmp_path):
    _, out, _ = run(capsys, "fit", "sleepstudy", SLOPES, "--json")
    rec = json.loads(out)
    rec["estimates"]["criterion"] += 1e-4   # a criterion that theta does not give
    path = tmp_path / "fit.json"
    path.write_text(json.dumps(rec))
    code, out, _ = run(capsys, "recheck", str(path))
    assert code == 1 and "criterion MISMATCH" in out.replace("  ", " ")
    assert out.splitlines()[-1] == "recheck: the record is NOT reproduced"


def test_recheck_detects_other_data(capsys, tmp_path):
    d = datasets.load("Orthodont")
    d.to_csv(tmp_path / "o.csv", index=False)
    _, out, _ = run(capsys, "fit", str(tmp_path / "o.csv"), "distance ~ age + (1 | Subject)", "--json")
    (tmp_path / "fit.json").write_text(out)
    d.assign(distance=d["distance"] + 1).to_csv(tmp_path / "o.csv", index=False)
    code, out, _ = run(capsys, "recheck", str(tmp_path / "fit.json"))
    assert code == 1 and "not the data of the record" in out


@pytest.mark.parametrize("content,message", [("{", "is not JSON"),
                                             ('{"schema": "other/1"}', "not an mmbook fit record"),
                                             ('{"schema": "mmbook-fit/1"}', "incomplete fit record")])
def test_recheck_bad_files(capsys, tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    code, _, err = run(capsys, "recheck", str(path))
    one_error_line(code, err, message)


# --------------------------------------------------------------------------- crosscheck
def test_crosscheck_agrees(capsys):
    code, out, _ = run(capsys, "crosscheck", "sleepstudy", SLOPES)
    assert code == 0 and out.splitlines()[0] == "mmbook vs statsmodels MixedLM (REML)"
    assert "agree: criteria within 1e-06 (relative), estimates within 1e-04" in out


def test_crosscheck_json(capsys):
    code, out, _ = run(capsys, "crosscheck", "sleepstudy", "Reaction ~ Days + (1 | Subject)", "--ml", "--json")
    j = json.loads(out)
    assert code == 0 and j["schema"] == "mmbook-crosscheck/1" and j["agree"] is True and j["REML"] is False
    assert j["table"][0]["quantity"] == "deviance (-2 logLik)" and j["table"][0]["agree"] is True
    assert j["statsmodels_model"].startswith("MixedLM.from_formula('Reaction ~ Days'")


def test_crosscheck_not_expressible(capsys):
    code, out, err = run(capsys, "crosscheck", "sleepstudy", "Reaction ~ Days + (Days | Subject) + (1 | Days)")
    assert code == 3
    assert out.strip() == ("not comparable: statsmodels MixedLM cannot represent the vector-valued term "
                           "(Days | Subject) crossed with another grouping factor: its variance components are scalar")


def test_crosscheck_disagreement_exits_1(capsys, monkeypatch):
    cc_module = importlib.import_module("mmbook.crosscheck")
    real = cc_module.crosscheck

    def disagreeing(fit):
        cc = real(fit)
        cc.agree, cc.verdict = False, "disagree: (made to disagree by the test)"
        return cc

    monkeypatch.setattr(cc_module, "crosscheck", disagreeing)
    code, out, _ = run(capsys, "crosscheck", "sleepstudy", "Reaction ~ Days + (1 | Subject)")
    assert code == 1 and "disagree: (made to disagree by the test)" in out


# --------------------------------------------------------------------------- validate, datasets
def test_validate_passes_and_prints_the_table(capsys):
    code, out, _ = run(capsys, "validate", "Dyestuff_REML", "Penicillin")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "mmbook vs lme4 1.1-31: the registry"
    assert [line.split()[0] for line in lines[2:5]] == ["Dyestuff_REML", "Penicillin_REML", "Penicillin_ML"]
    assert "3 passed, 0 failed, 0 skipped of 3." in lines


def test_validate_json_and_failure_exit(capsys, monkeypatch):
    code, out, _ = run(capsys, "validate", "Rail_REML", "--json")
    assert code == 0 and json.loads(out)["results"][0]["status"] == "pass"
    monkeypatch.setitem(validation.records.TOLERANCES, "sigma", 0.0)  # nothing meets a zero tolerance
    code, out, _ = run(capsys, "validate", "Rail_REML")
    assert code == 1 and "FAIL" in out and "Rail_REML: sigma: sigma differs by" in out


def test_datasets_list_info_export(capsys, tmp_path):
    code, out, _ = run(capsys, "datasets")
    assert code == 0 and out.splitlines()[0].split() == ["name", "rows", "columns", "origin", "source"]
    assert any(line.startswith("InstEval") and "73421" in line for line in out.splitlines())
    code, out, _ = run(capsys, "datasets", "Machines")
    assert code == 0 and out.startswith("Machines: 54 rows; Worker (category, ordered)")
    code, out, _ = run(capsys, "datasets", "Rail", "--export", str(tmp_path))
    assert code == 0 and (tmp_path / "Rail.csv").exists()
    meta = json.loads((tmp_path / "frames.json").read_text())
    assert meta["Rail"]["columns"][0] == {"name": "Rail", "dtype": "category",
                                          "levels": ["2", "5", "1", "6", "3", "4"], "ordered": True}


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("argv,message", [
    (["fit", "missing.csv", SLOPES], "no such file: missing.csv"),
    (["fit", "nosuchdata", SLOPES], "'nosuchdata' is neither a file nor a data set"),
    (["fit", "sleepstudy", "Reaction ~ Days + (Days | Subject"], "malformed formula"),
    (["fit", "sleepstudy", "Reaction ~ Dayz + (1 | Subject)"], "variable 'Dayz' not found in data"),
    (["fit", "sleepstudy", "Reaction ~ Days"], "no random-effects terms"),
    (["fit", "sleepstudy", SLOPES, "--control", "ftol=abc"], "--control ftol: 'abc' is not a valid float"),
    (["fit", "sleepstudy", SLOPES, "--control", "tolerance=1"], "expected NAME=VALUE with NAME one of"),
    (["fit", "sleepstudy"], "the following arguments are required: FORMULA"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["validate", "Raill"], "no registry entry or data set named 'Raill'"),
    (["datasets", "Raill"], "no data set named 'Raill'"),
    (["recheck", "missing.json"], "cannot read missing.json"),
    (["crosscheck", "sleepstudy", "Reaction ~ Dayz + (1 | Subject)"], "variable 'Dayz' not found"),
])
def test_errors_are_one_line_exit_2(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    one_error_line(code, err, message)


def test_unreadable_files(capsys, tmp_path):
    (tmp_path / "x.csv").write_bytes(b"\xff\xfe\x00garbage\x00\n\x00")
    code, _, err = run(capsys, "fit", str(tmp_path / "x.csv"), SLOPES)
    assert code == 2 and err.startswith("mmbook: error: ") and len(err.strip().splitlines()) == 1
    (tmp_path / "x.json").write_text("{}")
    code, _, err = run(capsys, "fit", str(tmp_path / "x.json"), SLOPES)
    one_error_line(code, err, "unknown file type")


# --------------------------------------------------------------------------- entry points
def test_python_dash_m_entry_point():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ok = subprocess.run([sys.executable, "-m", "mmbook", "fit", "Rail", "travel ~ 1 + (1 | Rail)", "--json"],
                        capture_output=True, text=True, env=env, cwd=ROOT)
    assert ok.returncode == 0 and json.loads(ok.stdout)["estimates"]["nobs"] == 18
    bad = subprocess.run([sys.executable, "-m", "mmbook", "fit", "Rail", "travel ~ 1 + (1 | Rial)"],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == ["mmbook: error: variable 'Rial' not found in data; its columns "
                                               "are: Rail, travel"]


def test_console_script_declared():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["scripts"]["mmbook"] == "mmbook.cli:main"
    assert callable(cli.main)
