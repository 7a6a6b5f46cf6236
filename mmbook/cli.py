"""The command line: ``mmbook`` (or ``python -m mmbook``).

Verbs::

    mmbook fit DATA FORMULA [--ml] [--json] [--control NAME=VALUE ...] [--glmer FAMILY]
    mmbook recheck FILE.json
    mmbook crosscheck DATA FORMULA [--ml] [--json] [--control NAME=VALUE ...]
    mmbook validate [NAME ...] [--json]
    mmbook datasets [NAME] [--json] [--export DIR]

``DATA`` is a CSV file (``.csv``, ``.csv.gz``, ``.tsv``), a Parquet file
(``.parquet``, needs pyarrow) or the name of a data set of the registry
(``mmbook datasets`` lists them). ``--control`` sets a field of
:class:`mmbook.LmerControl`, the one settings object of a fit (e.g.
``--control ftol=1e-14 --control polish=false``).

Exit status: 0 success (the fit, agreement, every registry entry passed, a
matching recheck); 1 a check failed (``crosscheck`` disagrees beyond its
tolerance, a ``validate`` entry failed, ``recheck`` does not match); 2 bad
input or a model that cannot be fitted (one line on stderr, never a
traceback; ``--traceback`` shows it for a bug report); 3 ``crosscheck``:
statsmodels cannot express the model (one line saying why).

The JSON fit record (``mmbook fit --json``), schema ``mmbook-fit/1``::

    {"schema": "mmbook-fit/1",
     "software": {"name": "mmbook", "version": "..."},
     "formula": "Reaction ~ Days + (Days | Subject)", "REML": true, "family": null,
     "data": {"source": "sleepstudy", "kind": "dataset" | "file", "path": null | "/abs/path.csv",
              "rows": 180, "checksum": {column: {"sum", "sumsq"} | {"counts"}}},
     "control": {LmerControl's fields},
     "criterion_name": "REML criterion" | "deviance",
     "estimates": {"criterion", "logLik", "theta", "theta_names", "fixef", "vcov", "sigma",
                   "varcorr", "ranef", "isSingular", "messages", "nobs", "ngroups"},
     "AIC": ..., "BIC": ..., "stderror": {name: se},
     "optimizer": {"converged": bool, "nfev": int, "messages": [...]}}

``estimates`` has the layout of lme4's results in the registry
(:mod:`mmbook.validation.records`), every number a full double; ``theta``
in lme4's order with lme4's names, so the criterion can be recomputed at it
by any implementation: ``mmbook recheck FILE.json`` does so (it rebuilds the
model from ``formula`` and ``data``, checks the data against ``checksum``,
evaluates the criterion, fixed effects, sigma, vcov, VarCorr and conditional
modes at the stored ``theta`` and reports whether they match).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import traceback
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["main", "fit_json", "read_data", "control_from_pairs", "FIT_SCHEMA", "EXIT"]

FIT_SCHEMA = "mmbook-fit/1"
EXIT = {"ok": 0, "check_failed": 1, "error": 2, "not_comparable": 3}
RECHECK_TOLERANCES = {"criterion": 1e-10, "theta": 0.0, "fixef": 1e-8, "sigma": 1e-9, "vcov": 1e-8,
                      "varcorr": 1e-8, "ranef": 1e-8}


class CommandError(Exception):
    """A user-facing error: printed as one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        raise CommandError(f"{message} (see '{self.prog} --help')")


# ----------------------------------------------------------------------------- data and settings
def read_data(spec: str) -> tuple[pd.DataFrame, dict]:
    """``DATA`` as a data frame, and where it came from (``kind``, ``source``, ``path``).

    A path to an existing CSV/TSV (optionally gzip-, bz2-, xz-compressed) or
    Parquet file, else a data set of the registry.

    Raises
    ------
    CommandError
        No such file or data set; a file that cannot be read.
    """
    from .validation.frames import frame, frame_names

    path = Path(spec)
    if path.is_file():
        name = path.name.lower()
        try:
            if name.endswith((".parquet", ".pq")):
                try:
                    import pyarrow  # noqa: F401
                except ImportError:
                    raise CommandError(f"reading the Parquet file {spec} needs pyarrow: "
                                       "pip install 'mmbook[parquet]'") from None
                d = pd.read_parquet(path)
            elif name.endswith((".tsv", ".tsv.gz", ".tab")):
                d = pd.read_csv(path, sep="\t")
            elif name.endswith((".csv", ".csv.gz", ".csv.bz2", ".csv.xz", ".txt")):
                d = pd.read_csv(path)
            else:
                raise CommandError(f"{spec}: unknown file type (expected .csv, .csv.gz, .tsv or .parquet)")
        except CommandError:
            raise
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {spec}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
        if d.shape[1] == 0 or len(d) == 0:
            raise CommandError(f"{spec} has no rows or no columns")
        return d, {"kind": "file", "source": spec, "path": str(path.resolve())}
    if spec in frame_names():
        return frame(spec), {"kind": "dataset", "source": spec, "path": None}
    if any(ch in spec for ch in "/\\") or path.suffix:
        raise CommandError(f"no such file: {spec}")
    raise CommandError(f"{spec!r} is neither a file nor a data set; data sets: {', '.join(frame_names())}")


def control_from_pairs(pairs) -> "LmerControl":  # noqa: F821 - the engine is imported lazily
    """An :class:`mmbook.LmerControl` from ``NAME=VALUE`` strings (the ``--control`` flags).

    Each value is converted to the field's type (float, int, bool, or
    ``none`` for an optional field).

    Raises
    ------
    CommandError
        An unknown field or a value of the wrong type.
    """
    from .engine.control import LmerControl

    fields = {f.name: f for f in dataclasses.fields(LmerControl)}
    values = {}
    for pair in pairs or ():
        name, sep, text = pair.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in fields:
            raise CommandError(f"--control {pair!r}: expected NAME=VALUE with NAME one of {', '.join(fields)}")
        default = fields[name].default
        text = text.strip()
        try:
            if text.lower() == "none" and "None" in str(fields[name].type):
                values[name] = None
            elif isinstance(default, bool):
                if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(text)
                values[name] = text.lower() in ("true", "1", "yes")
            elif isinstance(default, int):
                values[name] = int(text)
            else:
                values[name] = float(text)
        except ValueError:
            raise CommandError(f"--control {name}: {text!r} is not a valid {type(default).__name__}") from None
    return LmerControl(**values)


def _fit(args):
    """The fit ``fit``/``crosscheck`` ask for, with the warnings it raised (as text)."""
    data, source = read_data(args.data)
    control = control_from_pairs(args.control)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if getattr(args, "glmer", None):
            import mmbook

            glmer = getattr(mmbook, "glmer", None)
            if glmer is None:
                raise CommandError(f"--glmer {args.glmer}: mmbook has no glmer yet; only linear mixed "
                                   "models (lmer) can be fitted")
            fit = glmer(args.formula, data, family=args.glmer)
        else:
            from .engine.pipeline import lmer

            fit = lmer(args.formula, data, REML=not args.ml, control=control)
    messages = list(dict.fromkeys(str(w.message) for w in caught))
    return fit, data, source, messages


def fit_json(fit, data: pd.DataFrame, source: dict) -> dict:
    """The JSON fit record of ``fit`` (schema ``mmbook-fit/1``, see the module docstring)."""
    from . import __version__
    from .validation.frames import checksum
    from .validation.records import fit_record

    return {
        "schema": FIT_SCHEMA,
        "software": {"name": "mmbook", "version": __version__},
        "formula": fit.formula,
        "REML": bool(fit.REML),
        "family": None,
        "data": {**source, "rows": int(len(data)), "checksum": checksum(data)},
        "control": dataclasses.asdict(fit.control),
        "criterion_name": "REML criterion" if fit.REML else "deviance",
        "estimates": fit_record(fit),
        "AIC": float(fit.aic), "BIC": float(fit.bic),
        "stderror": {str(k): float(v) for k, v in fit.stderror.items()},
        "optimizer": {"converged": bool(fit.opt.converged), "nfev": int(fit.opt.nfev),
                      "messages": list(fit.opt.messages)},
    }


def _warn(messages):
    for m in messages:
        print(f"warning: {m}", file=sys.stderr)


# ----------------------------------------------------------------------------- verbs
def cmd_fit(args) -> int:
    fit, data, source, messages = _fit(args)
    if args.json:
        print(json.dumps(fit_json(fit, data, source), indent=1, allow_nan=False))
    else:
        print(fit.summary())
    _warn(messages)
    return EXIT["ok"]


def cmd_recheck(args) -> int:
    from .engine.fit import LmerFit
    from .engine.optimize import OptimizeResult
    from .engine.pipeline import build_model_frame
    from .engine.pls import PLS
    from .validation.frames import checksum
    from .validation.records import compare, fit_record

    path = Path(args.file)
    try:
        rec = json.loads(path.read_text())
    except OSError as exc:
        raise CommandError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise CommandError(f"{args.file} is not JSON: {exc}") from None
    if not isinstance(rec, dict) or rec.get("schema") != FIT_SCHEMA:
        raise CommandError(f"{args.file} is not an mmbook fit record (schema {FIT_SCHEMA!r})")
    try:
        src, est = rec["data"], rec["estimates"]
        formula, REML, theta = rec["formula"], bool(rec["REML"]), np.asarray(est["theta"], dtype=float)
    except (KeyError, TypeError, ValueError) as exc:
        raise CommandError(f"{args.file}: incomplete fit record ({exc})") from None
    if rec.get("family"):
        raise CommandError(f"{args.file}: rechecking a GLMM record is not supported yet")
    where = _record_data_location(src, path)
    data, _ = read_data(where)
    mine = checksum(data)
    if len(data) != src.get("rows") or not _checksums_close(mine, src.get("checksum") or {}):
        print(f"recheck {args.file}: the data at {where} are not the data of the record (checksum differs)")
        return EXIT["check_failed"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the frame's messages were reported when the record was made
        mf = build_model_frame(formula, data)
    pls = PLS(mf, REML=REML)
    if theta.shape != pls.theta0.shape:
        raise CommandError(f"{args.file}: theta has {theta.size} values, the model has {pls.theta0.size}")
    crit = float(pls.objective(theta))
    fit = LmerFit(mf=mf, pls=pls, opt=OptimizeResult(theta=theta, fun=crit, nfev=1, converged=False,
                                                     messages=["re-evaluated at a stored theta"]))
    cmp = compare(fit_record(fit), est, tolerances=RECHECK_TOLERANCES)
    name = "REML criterion" if REML else "deviance"
    lines = [f"recheck {args.file} ({rec['schema']}, {rec.get('software', {}).get('name', '?')} "
             f"{rec.get('software', {}).get('version', '?')})",
             f"data: {src.get('source')}, {len(data)} rows, checksum matches",
             f"{name} at the stored theta: {crit:.8g} recomputed, {est['criterion']:.8g} stored"]
    for q in ("criterion", "fixef", "sigma", "vcov", "varcorr", "ranef"):
        if q in cmp.passed:
            lines.append(f"  {q:9s} {'match' if cmp.passed[q] else 'MISMATCH'} "
                         f"(tolerance {RECHECK_TOLERANCES[q]:.0e} relative)")
    lines += [f"  {p}" for p in cmp.problems]
    lines.append("recheck: " + ("the record is reproduced at its theta" if cmp.ok else "the record is NOT reproduced"))
    print("\n".join(lines))
    return EXIT["ok"] if cmp.ok else EXIT["check_failed"]


def _record_data_location(src: dict, record_path: Path) -> str:
    """Where a fit record's data are: the data set's name, or the file (absolute path, as given, or
    next to the record)."""
    if src.get("kind") != "file":
        return str(src.get("source"))
    for candidate in (src.get("path"), src.get("source"),
                      str(record_path.parent / Path(str(src.get("source"))).name)):
        if candidate and Path(candidate).is_file():
            return candidate
    raise CommandError(f"the record's data file {src.get('source')} is not found (looked at {src.get('path')}, "
                       f"{src.get('source')} and next to the record)")


def _checksums_close(a: dict, b: dict) -> bool:
    if set(a) != set(b):
        return False
    for col, x in a.items():
        y = b[col]
        if ("counts" in x) != ("counts" in y):
            return False
        if "counts" in x:
            if x["counts"] != y["counts"]:
                return False
        elif any(abs(x[k] - y[k]) > 1e-12 * max(1.0, abs(y[k])) for k in ("sum", "sumsq")):
            return False
    return True


def cmd_crosscheck(args) -> int:
    try:
        import statsmodels  # noqa: F401
    except ImportError:
        raise CommandError("crosscheck needs statsmodels: pip install 'mmbook[crosscheck]'") from None
    from .crosscheck import crosscheck

    fit, _, _, messages = _fit(args)
    try:
        cc = crosscheck(fit)
    except NotImplementedError as exc:
        print(f"not comparable: {exc}")
        _warn(messages)
        return EXIT["not_comparable"]
    if args.json:
        t = cc.table.reset_index()
        rows = [{k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in r.items()}
                for r in t.to_dict(orient="records")]
        print(json.dumps({"schema": "mmbook-crosscheck/1", "formula": fit.formula, "REML": bool(fit.REML),
                          "agree": bool(cc.agree), "verdict": cc.verdict, "statsmodels_model": str(cc.translation),
                          "statsmodels_optimizer": cc.method, "not_compared": cc.not_compared, "table": rows},
                         indent=1, allow_nan=False, default=_json_default))
    else:
        print(cc)
    _warn(messages)
    return EXIT["ok"] if cc.agree else EXIT["check_failed"]


def _json_default(x):
    if isinstance(x, (np.bool_,)):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x) if np.isfinite(x) else None
    raise TypeError(type(x).__name__)


def cmd_validate(args) -> int:
    from .validation import validate

    try:
        v = validate(args.names or None)
    except KeyError as exc:
        raise CommandError(str(exc.args[0])) from None
    if args.json:
        print(json.dumps(v.to_json(), indent=1, allow_nan=False, default=_json_default))
    else:
        print(v)
    return EXIT["ok"] if v.passed else EXIT["check_failed"]


def cmd_datasets(args) -> int:
    from . import datasets
    from .validation.frames import BOOK_FRAMES, export, frame_names

    if args.export:
        names = [args.name] if args.name else None
        if args.name and args.name not in frame_names():
            raise CommandError(f"no data set named {args.name!r}; data sets: {', '.join(frame_names())}")
        for p in export(args.export, names):
            print(p)
        return EXIT["ok"]
    if args.name:
        if args.name in BOOK_FRAMES:
            fn, chapter = BOOK_FRAMES[args.name]
            d = fn()
            how = " ".join(fn.__doc__.replace("``", "").split()).split(": ", 1)[-1]
            text = f"{args.name}: {len(d)} rows; {', '.join(d.columns)}\nbuilt as the book's {chapter} " \
                   f"chapter builds it: {how}"
            print(json.dumps({"name": args.name, "rows": len(d), "columns": list(d.columns),
                              "chapter": chapter}) if args.json else text)
            return EXIT["ok"]
        try:
            info = datasets.info(args.name)
        except KeyError as exc:
            raise CommandError(str(exc.args[0])) from None
        print(json.dumps(dataclasses.asdict(info), indent=1) if args.json else info)
        return EXIT["ok"]
    lst = datasets.list()
    if args.json:
        print(json.dumps(lst.reset_index().to_dict(orient="records"), indent=1, default=_json_default))
        return EXIT["ok"]
    from .tables import text_table

    rows = [(n, str(r.rows), str(r.ncol), r.origin, r.source) for n, r in lst.iterrows()]
    for n, (fn, ch) in BOOK_FRAMES.items():
        d = fn()
        rows.append((n, str(len(d)), str(d.shape[1]), "book", f"the {ch} chapter"))
    print(text_table(("name", "rows", "columns", "origin", "source"), rows, align="lrrll",
                     footer=["mmbook datasets NAME: its columns, source and description; "
                             "--export DIR: CSV files for another implementation"]))
    return EXIT["ok"]


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mmbook", description="Linear mixed models as lme4 fits them; the book's reference data "
                                           "and lme4's stored results, for validating an implementation.")
    p.add_argument("--traceback", action="store_true", help="show the Python traceback of an error (bug reports)")
    sub = p.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)

    def model_args(q):
        q.add_argument("data", metavar="DATA", help="CSV/TSV/Parquet file, or a data set name (mmbook datasets)")
        q.add_argument("formula", metavar="FORMULA", help="lme4 formula, e.g. 'Reaction ~ Days + (Days | Subject)'")
        q.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
        q.add_argument("--json", action="store_true", help="print JSON instead of text")
        q.add_argument("--control", action="append", metavar="NAME=VALUE",
                       help="set a field of mmbook.LmerControl (repeatable), e.g. ftol=1e-14")

    q = sub.add_parser("fit", help="fit a model; print lme4's summary or the JSON fit record")
    model_args(q)
    q.add_argument("--glmer", metavar="FAMILY", help="a generalized linear mixed model of this family")
    q.set_defaults(run=cmd_fit)

    q = sub.add_parser("recheck", help="re-evaluate a JSON fit record at its stored theta")
    q.add_argument("file", metavar="FILE.json")
    q.set_defaults(run=cmd_recheck)

    q = sub.add_parser("crosscheck", help="mmbook against statsmodels MixedLM (exit 1 if they disagree)")
    model_args(q)
    q.set_defaults(run=cmd_crosscheck)

    q = sub.add_parser("validate", help="fit the registry's models and compare with lme4's stored results")
    q.add_argument("names", nargs="*", metavar="NAME", help="registry entries or data sets (default: all)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(run=cmd_validate)

    q = sub.add_parser("datasets", help="list the data sets, describe one, or export them as CSV")
    q.add_argument("name", nargs="?", metavar="NAME")
    q.add_argument("--json", action="store_true")
    q.add_argument("--export", metavar="DIR", help="write CSV files and frames.json to DIR")
    q.set_defaults(run=cmd_datasets)
    return p


def main(argv=None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    show_tb = "--traceback" in argv
    try:
        args = parser.parse_args(argv)
        if args.verb is None:
            parser.print_help()
            return EXIT["error"]
        return args.run(args)
    except CommandError as exc:
        print(f"mmbook: error: {exc}", file=sys.stderr)
    except (ValueError, TypeError, KeyError, RuntimeError, np.linalg.LinAlgError) as exc:
        if show_tb:
            traceback.print_exc()
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"mmbook: error: {' '.join(str(msg).split())}", file=sys.stderr)
    except Exception as exc:  # never a traceback for a user; --traceback for a bug report
        if show_tb:
            traceback.print_exc()
        print(f"mmbook: internal error: {type(exc).__name__}: {' '.join(str(exc).split())} "
              "(please report it, with --traceback)", file=sys.stderr)
    return EXIT["error"]
