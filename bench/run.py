"""Run the benchmark suite: mmbook against lme4 and statsmodels MixedLM.

``make bench`` (or ``python -m bench.run [--cases a,b] [--quick]``).

For each case of ``bench.datasets.CASES``, in one run:

- mmbook: ``bench/mm_fit.py`` in a subprocess (time, peak memory, criterion);
- lme4: ``bench/lme4_fit.R`` through ``Rscript`` (if R and lme4 are
  installed), on the same data written to a temporary directory in a binary
  form R reads directly; only the ``lmer()`` call is timed;
- statsmodels: ``bench/sm_fit.py`` in a subprocess killed after
  ``--sm-timeout`` seconds (600).

Tools run one after the other, never side by side (the machine has two
cores). Every subprocess gets one BLAS/OpenMP thread unless the caller set
``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS`` (the Makefile sets 1, the
project's setting). The table is printed and written, with machine
information, to ``bench/results/latest.json``; the figure to
``bench/results/latest.png``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from bench.datasets import CASES
from bench.report import markdown_table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
PY = sys.executable

# Targets of the issue "Performance: a benchmark suite, and an lmer 20x faster than lme4", raised by
# issue 17 (sparse crossed designs): InstEval samples 5x, full InstEval (ML) and the crossed set 20x.
LME4_SPEEDUP = {"sleepstudy": 1.0, "slopes_100k": 20.0, "slopes_1m": 20.0,
                "crossed_200k": 20.0, "insteval_like": 5.0, "insteval_20k": 5.0, "insteval_40k": 5.0,
                "insteval_ml": 20.0,
                # issue "Binary and count responses: glmer": at least 10 times lme4's glmer
                "glmm_slopes_100k": 10.0, "glmm_verbagg_like": 10.0}
SM_SPEEDUP = {"slopes_1m": 100.0}
CRIT_RTOL = 1e-6          # mmbook criterion <= other + 1e-6 |criterion|
MEMORY_CASE, MEMORY_RATIO, MEMORY_LIMIT = "slopes_10m", 3.0, 24 * 2**30

# statsmodels on the crossed designs (the vc_formula trick), tried on this machine:
SM_VC_SKIP = ("skip: infeasible: with the vc_formula trick (one all-ones group, sparse variance-"
              "component matrices) MixedLM had not finished the InstEval-like set after 19 min "
              "(11.8 GB resident), nor the 200k crossed set within 10 min; run with --sm-crossed "
              "to try again")


# ---------------------------------------------------------------- subprocesses
def run_child(cmd, timeout, env=None):
    """Run ``cmd``; return (returncode or None on timeout, stdout, stderr, peak RSS bytes, wall s).

    The child runs in its own session so that a timeout kills it and its
    children (by process-group id). ``os.wait4`` gives the child's own
    resource usage, hence its peak resident set.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=ROOT, env=env,
                                start_new_session=True)
        rc, rusage = None, None
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                rc = os.waitstatus_to_exitcode(status)
                proc.returncode = rc
                break
            if time.perf_counter() - t0 > timeout:
                os.killpg(proc.pid, signal.SIGKILL)
                _, _, rusage = os.wait4(proc.pid, 0)
                proc.returncode = -9
                break
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        return rc, out.read().decode(), err.read().decode(), rusage.ru_maxrss * 1024, wall


def last_json(text):
    """The last line of ``text`` that parses as a JSON object."""
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON result in output")


def failure(rc, err, timeout):
    if rc is None:
        return f"timed out after {timeout:.0f} s (killed)"
    tail = " ".join(err.strip().splitlines()[-3:])[-400:]
    return f"failed (exit {rc}): {tail}"


def run_mmbook(case, timeout):
    commit = mmbook_commit()
    rc, out, err, peak, wall = run_child([PY, "-m", "bench.mm_fit", case.name, str(case.runs_mmbook)],
                                         timeout)
    if commit != mmbook_commit():
        commit = f"changed during the fits: {commit} -> {mmbook_commit()}"
    if rc != 0:
        return {"status": failure(rc, err, timeout), "mmbook_commit": commit}
    res = last_json(out)
    res.update(status="ok", time=statistics.median(res["times"]), process_peak_rss_bytes=peak,
               mmbook_commit=commit)
    return res


def run_statsmodels(case, timeout, quick, crossed):
    if case.sm.startswith("skip"):
        return {"status": case.sm}
    if case.sm == "vc" and not crossed:
        return {"status": SM_VC_SKIP}
    if quick and case.rows >= 1_000_000:
        return {"status": "skip: --quick (statsmodels not run on sets of 1M rows or more)"}
    rc, out, err, peak, wall = run_child([PY, "-m", "bench.sm_fit", case.name, str(case.runs_sm)],
                                         timeout)
    if rc != 0:
        return {"status": failure(rc, err, timeout)}
    res = last_json(out)
    res.update(status="ok", time=statistics.median(res["times"]), process_peak_rss_bytes=peak)
    return res


def write_for_r(df, directory):
    """Write ``df`` for ``bench/lme4_fit.R``: float64 columns, and int32 codes + labels."""
    rows = []
    for name in df.columns:
        col = df[name]
        if pd.api.types.is_numeric_dtype(col):
            col.to_numpy(np.float64).astype("<f8").tofile(directory / f"{name}.f64")
            rows.append((name, "double", len(df)))
        else:
            codes, uniques = pd.factorize(col)
            codes.astype("<i4").tofile(directory / f"{name}.i32")
            (directory / f"{name}.levels").write_text("\n".join(map(str, uniques)) + "\n")
            rows.append((name, "labels", len(df)))
    pd.DataFrame(rows, columns=["name", "kind", "rows"]).to_csv(
        directory / "columns.tsv", sep="\t", index=False)


def lme4_available():
    if shutil.which("Rscript") is None:
        return False
    rc, *_ = run_child(["Rscript", "-e", "suppressPackageStartupMessages(library(lme4))"], 120)
    return rc == 0


def run_lme4(case, timeout):
    with tempfile.TemporaryDirectory(prefix="mmbook-bench-") as tmp:
        df = case.make()
        write_for_r(df, Path(tmp))
        del df
        rc, out, err, peak, wall = run_child(
            ["Rscript", str(HERE / "lme4_fit.R"), tmp, case.formula, "TRUE" if case.REML else "FALSE",
             str(case.runs_lme4), case.family],
            timeout)
    if rc != 0:
        return {"status": failure(rc, err, timeout)}
    kv = dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)
    times = [float(t) for t in kv["times"].split()]
    return {
        "status": "ok",
        "times": times,
        "time": statistics.median(times),
        "cpu_times": [float(t) for t in kv["cpu_times"].split()],
        "criterion": float(kv["criterion"]),
        "fixef": dict(zip(kv["fixef_names"].split(), map(float, kv["fixef"].split()))),
        "theta": [float(t) for t in kv["theta"].split()],
        "sigma": float(kv["sigma"]),
        "optimizer": kv["optimizer"].strip(),
        "feval": int(kv["feval"]),
        "warnings": [w.strip() for w in kv.get("warnings", "").split(" | ") if w.strip()],
        "process_peak_rss_bytes": peak,
        "versions": {k: kv[k].strip() for k in ("R", "lme4", "Matrix", "BLAS", "LAPACK")},
    }


# ---------------------------------------------------------------- machine
def machine_info():
    info = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                           if line.startswith("model name"))
    except (OSError, StopIteration):
        info["cpu"] = platform.processor() or "unknown"
    info["cores"] = os.cpu_count()
    try:
        meminfo = Path("/proc/meminfo").read_text().split()
        info["memory_gib"] = round(int(meminfo[meminfo.index("MemTotal:") + 1]) / 2**20, 1)
    except (OSError, ValueError):
        info["memory_gib"] = None
    info["os"] = platform.platform()
    info["mmbook_commit"] = mmbook_commit()
    info["threads_env"] = {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    code = ("import json, sys, numpy, scipy, pandas, statsmodels, formulaic, threadpoolctl, mmbook;"
            "from threadpoolctl import threadpool_info;"
            "print(json.dumps({'python': sys.version.split()[0], 'numpy': numpy.__version__,"
            "'scipy': scipy.__version__, 'pandas': pandas.__version__,"
            "'statsmodels': statsmodels.__version__, 'formulaic': formulaic.__version__,"
            "'mmbook': mmbook.__version__,"
            "'blas': [{k: d.get(k) for k in ('internal_api', 'version', 'architecture',"
            "'num_threads', 'filepath')} for d in threadpool_info()]}))")
    rc, out, err, *_ = run_child([PY, "-c", code], 120)
    info["python"] = last_json(out) if rc == 0 else {"error": err[-300:]}
    return info


def mmbook_commit():
    """The commit the benchmarked mmbook comes from.

    With local changes in ``mmbook/``, ``+dirty:`` and a short hash of the
    package's sources is appended, so two runs of different working trees
    never look the same.
    """
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "mmbook"], cwd=ROOT,
                               capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if dirty:
        h = hashlib.sha1()
        for f in sorted((ROOT / "mmbook").rglob("*.py")):
            h.update(f.read_bytes())
        head += f"+dirty:{h.hexdigest()[:8]}"
    return head or None


def loadavg():
    """One-minute load average: other work on the machine slows every tool down."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


def mmbook_available():
    rc, _, err, *_ = run_child([PY, "-c", "import mmbook; mmbook.lmer"], 120)
    return rc == 0


# ---------------------------------------------------------------- targets
def evaluate(name, res):
    """Ratios and PASS/FAIL checks for one case."""
    mm, r, sm = res["mmbook"], res["lme4"], res["statsmodels"]
    ok = lambda d: d.get("status") == "ok"  # noqa: E731
    ev = {"targets": []}
    cpu = lambda d: statistics.median(d["cpu_times"])  # noqa: E731
    if ok(mm) and ok(r):
        ev["lme4_ratio"] = r["time"] / mm["time"]
        ev["lme4_cpu_ratio"] = cpu(r) / cpu(mm)
    if ok(mm) and ok(sm):
        ev["sm_ratio"] = sm["time"] / mm["time"]
        ev["sm_cpu_ratio"] = cpu(sm) / cpu(mm)
    if name in LME4_SPEEDUP:
        need = LME4_SPEEDUP[name]
        ev["targets"].append({
            "target": f"lme4/mmbook >= {need:g}", "value": ev.get("lme4_ratio"),
            "pass": (ev["lme4_ratio"] >= need) if "lme4_ratio" in ev else None})
    if name in SM_SPEEDUP:
        need = SM_SPEEDUP[name]
        ev["targets"].append({
            "target": f"statsmodels/mmbook >= {need:g}", "value": ev.get("sm_ratio"),
            "pass": (ev["sm_ratio"] >= need) if "sm_ratio" in ev else None})
    for tool, other in (("lme4", r), ("statsmodels", sm)):
        if ok(mm) and ok(other):
            diff = mm["criterion"] - other["criterion"]
            ev[f"crit_diff_{tool}"] = diff
            ev["targets"].append({
                "target": f"criterion <= {tool} + {CRIT_RTOL:g}|crit|", "value": diff,
                "pass": diff <= CRIT_RTOL * abs(other["criterion"])})
    if name == MEMORY_CASE:
        if ok(mm):
            ratio = mm["fit_peak_bytes"] / mm["df_deep_bytes"]
            ev["memory_ratio"] = ratio
            ev["memory_ratio_df_rss"] = mm["fit_peak_bytes"] / mm["df_rss_bytes"]
            ev["targets"].append({"target": f"peak/df < {MEMORY_RATIO:g}", "value": ratio,
                                  "pass": ratio < MEMORY_RATIO})
            ev["targets"].append({"target": "process peak < 24 GiB",
                                  "value": mm["process_peak_rss_bytes"] / 2**30,
                                  "pass": mm["process_peak_rss_bytes"] < MEMORY_LIMIT})
        else:
            ev["targets"].append({"target": "fits within 24 GiB", "value": None, "pass": False})
    elif ok(mm):
        ev["memory_ratio"] = mm["fit_peak_bytes"] / mm["df_deep_bytes"]
        ev["memory_ratio_df_rss"] = mm["fit_peak_bytes"] / max(mm["df_rss_bytes"], 1)
    return ev


# ---------------------------------------------------------------- table
def fmt_time(d):
    if d.get("status") != "ok":
        s = d.get("status", "")
        return "pending" if s == "pending" else ("timeout" if "timed out" in s else
                                                 "skipped" if s.startswith("skip") else "failed")
    t = d["time"]
    return f"{t:.3f}" if t < 1 else f"{t:.2f}" if t < 100 else f"{t:.0f}"


def mark(p):
    return "" if p is None else (" PASS" if p else " FAIL")


def fmt_ratio(ev, key, name, needs):
    if key not in ev:
        return "-"
    s = f"{ev[key]:.1f}"
    if name in needs:
        s += f" (>={needs[name]:g}{mark(ev[key] >= needs[name])})"
    return s


def fmt_diff(ev, tool, res):
    key = f"crit_diff_{tool}"
    if key not in ev:
        return "-"
    other = res[tool]["criterion"]
    return f"{ev[key]:+.1e}{mark(ev[key] <= CRIT_RTOL * abs(other))}"


def fmt_groups(case):
    return " x ".join(f"{n:,}" for n in case.groups.values())


def table_rows(results):
    rows = []
    for name, res in results.items():
        case, ev, mm = CASES[name], res["eval"], res["mmbook"]
        mem = "-"
        if mm.get("status") == "ok":
            mb = mm["fit_peak_bytes"] / 2**20
            if mb < 1:  # below the resolution of the kernel's RSS accounting
                mem = "< 1 MB"
            else:
                mem = f"{mb:,.0f} MB" if mb >= 10 else f"{mb:.1f} MB"
                mem += f" ({ev['memory_ratio']:.2f}x"
                mem += (f"{mark(ev['memory_ratio'] < MEMORY_RATIO)})" if name == MEMORY_CASE else ")")
        crit = next((res[t]["criterion"] for t in ("mmbook", "lme4", "statsmodels")
                     if res[t].get("status") == "ok"), None)
        rows.append({
            "case": case.label, "rows": f"{case.rows:,}", "groups": fmt_groups(case),
            "mmbook s": fmt_time(mm), "lme4 s": fmt_time(res["lme4"]),
            "statsmodels s": fmt_time(res["statsmodels"]),
            "lme4/mmbook": fmt_ratio(ev, "lme4_ratio", name, LME4_SPEEDUP),
            "sm/mmbook": fmt_ratio(ev, "sm_ratio", name, SM_SPEEDUP),
            "mmbook peak (x df)": mem,
            "criterion": "-" if crit is None else f"{crit:.4f}",  # mmbook's, else lme4's
            "mmbook - lme4": fmt_diff(ev, "lme4", res),
            "mmbook - sm": fmt_diff(ev, "statsmodels", res),
        })
    return rows


def format_table(rows):
    cols = list(rows[0])
    width = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    left = {"case", "groups"}
    line = lambda r: "  ".join(r[c].ljust(width[c]) if c in left else r[c].rjust(width[c])  # noqa: E731
                               for c in cols)
    return "\n".join([line({c: c for c in cols}), "  ".join("-" * width[c] for c in cols)]
                     + [line(r) for r in rows])


# ---------------------------------------------------------------- figure
def figure(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.ticker import LogLocator, NullFormatter

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), sharey=True)
    style = {"mmbook": ("o", "C0"), "lme4": ("s", "C3"), "statsmodels": ("^", "C2")}
    for ax, xkey in zip(axes, ("rows", "groups")):
        for name, res in results.items():
            case = CASES[name]
            x = case.rows if xkey == "rows" else sum(case.groups.values())
            ts = [res[t]["time"] for t in style if res[t].get("status") == "ok"]
            if len(ts) > 1:  # a faint line joins the tools on one case: its length is the ratio
                ax.plot([x, x], [min(ts), max(ts)], color="0.85", linewidth=3, zorder=1)
            if ts:
                ax.annotate(case.label, (x, min(ts)), textcoords="offset points", xytext=(7, -4),
                            fontsize=7, color="0.3")
        for tool, (marker, color) in style.items():
            pts = [((CASES[n].rows if xkey == "rows" else sum(CASES[n].groups.values())),
                    res[tool]["time"]) for n, res in results.items()
                   if res[tool].get("status") == "ok"]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker=marker, color=color, linestyle="none", markersize=7,
                        label=tool, zorder=3)
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_locator(LogLocator(base=10))
            axis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="major", alpha=0.3)
        ax.set_xlabel("rows" if xkey == "rows" else "random-effect levels (all grouping factors)")
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=3, frameon=False)
    axes[0].set_ylabel("fit time, seconds (median)")
    fig.suptitle("Time to fit, from a data frame with string labels to the finished fit")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------- main
def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    p.add_argument("--cases", help=f"comma-separated subset of: {', '.join(CASES)}")
    p.add_argument("--quick", action="store_true",
                   help="skip the 10M case, and statsmodels on sets of 1M rows or more")
    p.add_argument("--no-lme4", action="store_true", help="do not run lme4")
    p.add_argument("--no-statsmodels", action="store_true", help="do not run statsmodels")
    p.add_argument("--sm-crossed", action="store_true",
                   help="also try statsmodels on the crossed designs (each runs into the timeout)")
    p.add_argument("--sm-timeout", type=float, default=600.0,
                   help="seconds before a statsmodels fit is abandoned (default 600)")
    p.add_argument("--out", default=str(RESULTS / "latest"),
                   help="output path without extension (default bench/results/latest)")
    args = p.parse_args(argv)

    names = list(CASES) if not args.cases else [c.strip() for c in args.cases.split(",")]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        p.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    if args.quick:
        names = [n for n in names if not CASES[n].big]

    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    os.environ.setdefault("MPLBACKEND", "Agg")

    t_start = time.perf_counter()
    info = machine_info()
    have_mm = mmbook_available()
    have_r = not args.no_lme4 and lme4_available()
    print(f"mmbook.lmer: {'yes' if have_mm else 'not available (pending)'}; "
          f"lme4: {'yes' if have_r else 'not run'}; cases: {', '.join(names)}", flush=True)

    results = {}
    for name in names:
        case = CASES[name]
        res = {"loadavg_before": loadavg()}
        print(f"[{time.perf_counter() - t_start:7.0f} s] {name} (load {res['loadavg_before']:.1f}): "
              "mmbook", end="", flush=True)
        res["mmbook"] = run_mmbook(case, 3600) if have_mm else {"status": "pending"}
        print(", lme4", end="", flush=True)
        res["lme4"] = run_lme4(case, 3600) if have_r else {"status": "skip: Rscript/lme4 not installed"}
        print(", statsmodels", end="", flush=True)
        res["statsmodels"] = ({"status": "skip: --no-statsmodels"} if args.no_statsmodels
                              else run_statsmodels(case, args.sm_timeout, args.quick,
                                                   args.sm_crossed))
        res["loadavg_after"] = loadavg()
        res["eval"] = evaluate(name, res)
        print(" done", flush=True)
        for tool in ("mmbook", "lme4", "statsmodels"):
            st = res[tool].get("status")
            if st != "ok":
                print(f"    {tool}: {st}", flush=True)
            for w in res[tool].get("warnings", []):
                print(f"    {tool} warning: {w}", flush=True)
        results[name] = res

    rows = table_rows(results)
    table = format_table(rows)
    print()
    print(table)
    targets = [(name, t) for name, res in results.items() for t in res["eval"]["targets"]]
    n_pass = sum(t["pass"] is True for _, t in targets)
    n_fail = sum(t["pass"] is False for _, t in targets)
    n_open = sum(t["pass"] is None for _, t in targets)
    print(f"\ntargets: {n_pass} PASS, {n_fail} FAIL" + (f", {n_open} not measured" if n_open else ""))
    for name, t in targets:
        if t["pass"] is not True:
            v = "-" if t["value"] is None else f"{t['value']:.3g}"
            print(f"  {'FAIL' if t['pass'] is False else 'n/a '}  {name}: {t['target']} (measured {v})")

    loads = [v for res in results.values() for v in (res["loadavg_before"], res["loadavg_after"])]
    if loads and max(loads) > 1.5:
        print(f"\nnote: the machine was busy with other work (load average up to {max(loads):.1f} "
              f"on {os.cpu_count()} cores, the benchmark itself counting 1); wall-clock times may "
              "be inflated. CPU-time ratios "
              "lme4/mmbook: " + ", ".join(f"{n} {r['eval']['lme4_cpu_ratio']:.1f}"
                                         for n, r in results.items() if "lme4_cpu_ratio" in r["eval"]))

    commits = {res["mmbook"].get("mmbook_commit") for res in results.values()} - {None}
    if len(commits) > 1:
        info["mmbook_commit"] = "mixed: " + ", ".join(sorted(commits))
        print(f"\nwarning: mmbook changed during the run ({', '.join(sorted(commits))}); "
              "the cases were not all fitted by the same code", flush=True)
    elif commits:
        info["mmbook_commit"] = commits.pop()

    elapsed = time.perf_counter() - t_start
    r_versions = next((res["lme4"]["versions"] for res in results.values()
                       if res["lme4"].get("status") == "ok"), None)
    info["R"] = r_versions
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": info,
        "command": "python -m bench.run " + " ".join(sys.argv[1:] if argv is None else argv),
        "total_seconds": round(elapsed, 1),
        "timing": ("median wall-clock seconds per fit; mmbook: mmbook.lmer(formula, df) from a "
                   "DataFrame with string labels; lme4: the lmer() call on a data.frame with "
                   "character columns; statsmodels: model construction + fit(reml=True)"),
        "targets": {"lme4_speedup": LME4_SPEEDUP, "statsmodels_speedup": SM_SPEEDUP,
                    "criterion_rtol": CRIT_RTOL,
                    "memory": {"case": MEMORY_CASE, "peak_over_df": MEMORY_RATIO,
                               "limit_bytes": MEMORY_LIMIT}},
        "table": rows,
        "table_markdown": markdown_table(rows),
        "cases": {name: {"label": CASES[name].label, "formula": CASES[name].formula,
                         "rows": CASES[name].rows, "groups": CASES[name].groups, **res}
                  for name, res in results.items()},
    }
    out.with_suffix(".json").write_text(json.dumps(payload, indent=1) + "\n")
    figure(results, out.with_suffix(".png"))
    print(f"\nwrote {out.with_suffix('.json')} and {out.with_suffix('.png')} "
          f"({elapsed / 60:.1f} min)")


if __name__ == "__main__":
    main()
