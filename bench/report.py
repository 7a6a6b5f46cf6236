"""Print the Markdown pieces of the book's Performance page from a recorded run.

``python -m bench.report [bench/results/latest.json]`` prints the results
table, the targets and the machine description as Markdown, to paste into
``book/performance.md`` (the page shows a recorded run; the book build never
re-runs the benchmark).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DEFAULT = Path(__file__).resolve().parent / "results" / "latest.json"


def md_cell(text: str) -> str:
    """``text`` for a Markdown table cell: ``|`` and ``*`` (as in ``service*dept``) escaped."""
    return str(text).replace("|", "\\|").replace("*", "\\*")


def markdown_table(rows):
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |",
           "|" + "|".join("---" if c in ("case", "groups") else "---:" for c in cols) + "|"]
    out += ["| " + " | ".join(md_cell(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(out)


def targets_markdown(d):
    lines = ["| case | target | measured | |", "|---|---|---:|---|"]
    for name, c in d["cases"].items():
        for t in c["eval"]["targets"]:
            v = t["value"]
            if v is None:
                val = "-"
            elif "criterion" in t["target"]:
                val = f"{v:+.1e}"
            elif "GiB" in t["target"]:
                val = f"{v:.2f} GiB"
            else:
                val = f"{v:.3g}"
            verdict = {True: "PASS", False: "**FAIL**", None: "not measured"}[t["pass"]]
            lines.append(f"| {md_cell(c['label'])} | {md_cell(t['target'])} "
                         f"| {val} | {verdict} |")
    return "\n".join(lines)


def machine_markdown(d):
    m = d["machine"]
    py = m.get("python", {})
    r = m.get("R") or {}
    blas = "; ".join(f"{b['internal_api']} {b['version']} ({b['architecture']}, "
                     f"{b['num_threads']} thread{'s' if b['num_threads'] != 1 else ''})"
                     for b in py.get("blas", []))
    rows = [
        ("date", m.get("date")),
        ("CPU", f"{m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_gib')} GiB memory"),
        ("OS", m.get("os")),
        ("Python", f"{py.get('python')}: numpy {py.get('numpy')}, scipy {py.get('scipy')}, "
                   f"pandas {py.get('pandas')}, formulaic {py.get('formulaic')}, "
                   f"statsmodels {py.get('statsmodels')}"),
        ("BLAS (Python)", blas),
        ("mmbook", f"{py.get('mmbook')} at commit {m.get('mmbook_commit')}"),
        ("R", f"{r.get('R')}, lme4 {r.get('lme4')}, Matrix {r.get('Matrix')}"),
        ("BLAS (R)", f"{r.get('BLAS')} (Debian's reference BLAS)"),
        ("threads", ", ".join(f"{k}={v}" for k, v in m.get("threads_env", {}).items())),
        ("whole run", f"{d['total_seconds'] / 60:.1f} min (`{d['command'].strip()}`)"),
    ]
    return "\n".join(["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows])


def evaluations_markdown(d):
    """Evaluations of the criterion per fit: mmbook's (an evaluation with the analytic gradient counts
    as one) and lme4's (``optinfo$feval``)."""
    lines = ["| case | mmbook evaluations | lme4 evaluations |", "|---|---:|---:|"]
    for name, c in d["cases"].items():
        mm, r = c["mmbook"], c["lme4"]
        lines.append(f"| {md_cell(c['label'])} | {mm.get('nfev', '-')} | {r.get('feval', '-')} |")
    return "\n".join(lines)


def dask_markdown(path):
    """The larger-than-memory runs of ``bench/dask_big.py``."""
    d = json.loads(Path(path).read_text())
    lines = ["| rows | Parquet on disk | time | CPU time | peak memory | criterion | the same rows in pandas |",
             "|---:|---:|---:|---:|---:|---:|---|"]
    for n, r in sorted(d.items(), key=lambda kv: int(kv[0])):
        if r.get("status") != "ok":
            lines.append(f"| {int(n):,} | - | {r.get('status')} | | | | |")
            continue
        ref = r.get("pandas")
        diff = (f"{ref['wall_s']:.1f} s, {ref['peak_rss_bytes'] / 2**30:.2f} GiB; criterion differs by "
                f"{r['criterion_rel_diff']:.0e} (relative)") if ref else "-"
        lines.append(f"| {int(n):,} | {r['parquet_bytes'] / 2**30:.2f} GiB | {r['wall_s']:.1f} s | {r['cpu_s']:.1f} s "
                     f"| {r['peak_rss_bytes'] / 2**30:.2f} GiB | {r['criterion']:.4f} | {diff} |")
    return "\n".join(lines)


def dask_fit_line(path):
    """Least-squares line ``time = a + b * rows`` through the Dask runs: ``(a seconds, b seconds per
    million rows, the passes' share)``."""
    import numpy as np

    d = json.loads(Path(path).read_text())
    ok = sorted((int(n), r) for n, r in d.items() if r.get("status") == "ok")
    rows = np.array([n / 1e6 for n, _ in ok])
    wall = np.array([r["wall_s"] for _, r in ok])
    b, a = np.polyfit(rows, wall, 1)
    return float(a), float(b), ok


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.splitlines()[0])
    p.add_argument("path", nargs="?", default=str(DEFAULT),
                   help="a results file written by python -m bench.run (default bench/results/latest.json)")
    path = Path(p.parse_args(argv).path)
    if not path.is_file():
        p.error(f"{path} does not exist: run `make bench` (or python -m bench.run) first, or give the file's path")
    d = json.loads(path.read_text())
    loads = [v for c in d["cases"].values() for v in (c["loadavg_before"], c["loadavg_after"])]
    print("## results table\n")
    print(markdown_table(d["table"]))
    print("\n## targets\n")
    print(targets_markdown(d))
    print("\n## machine\n")
    print(machine_markdown(d))
    print(f"\nload average during the run: {min(loads):.1f} to {max(loads):.1f}")
    cpu = {n: round(c["eval"]["lme4_cpu_ratio"], 1) for n, c in d["cases"].items()
           if "lme4_cpu_ratio" in c["eval"]}
    print(f"CPU-time ratios lme4/mmbook: {cpu}")
    print("\n## evaluations\n")
    print(evaluations_markdown(d))
    dask_path = path.parent / "dask_big.json"
    if dask_path.exists():
        print("\n## dask\n")
        print(dask_markdown(dask_path))
        a, b, ok = dask_fit_line(dask_path)
        print(f"\nline: time = {a:.1f} s + {b:.3f} s per million rows")
        for n, r in ok:
            t = r.get("timings", {})
            print(f"{n:,}: passes {t.get('levels_s', 0):.1f} + {t.get('cross_products_s', 0):.1f} s, fit "
                  f"{t.get('fit_s', 0):.1f} s, load {r['loadavg']}")


if __name__ == "__main__":
    main()
