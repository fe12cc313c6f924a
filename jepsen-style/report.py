"""The human report of a chaos run: report.png (timeline + latencies), report.html, a text summary.

`write_report(run_dir, results)` reads the run's files, writes both into `run_dir`, and returns the
short summary the runner prints (verdict per checker, op counts, faults by kind, failover figures).
"""

from __future__ import annotations

import base64
import html
import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from checkers.history import NemesisWindow, Op
from checkers.rundata import Run
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

PNG = "report.png"
HTML = "report.html"
TYPE_COLORS = {"ok": "tab:green", "fail": "tab:red", "info": "tab:orange"}
F_MARKERS = {"submit": "o", "get": "^", "cancel": "s"}
OTHER_MARKER = "x"
MIN_LATENCY_MS = 1e-3  # a log axis cannot show 0
MAX_FACTS = 6


def write_report(run_dir: Path, results: dict[str, Any]) -> str:
    """Write report.png and report.html into run_dir; return the text summary."""
    run_dir = Path(run_dir)
    run = Run.from_dir(run_dir)
    ops, nemesis, problems = _load(run)
    if ops or nemesis:
        plot_timeline(ops, nemesis, run_dir / PNG)
    summary = summarize(results, ops, nemesis)
    (run_dir / HTML).write_text(render_html(run, results, ops, nemesis, summary, problems, run_dir / PNG))
    return summary + f"\nreport: {run_dir / HTML}"


def _load(run: Run) -> tuple[list[Op], list[NemesisWindow], list[str]]:
    try:
        return run.ops, run.nemesis, []
    except (OSError, ValueError) as err:
        return [], [], [f"history unreadable: {err}"]


# --- the figure --------------------------------------------------------------------------------


def plot_timeline(ops: list[Op], nemesis: list[NemesisWindow], path: Path) -> None:
    """Fault lanes on top; below, each op at its completion time with its latency (log scale)."""
    fig = Figure(figsize=(13, 7), layout="constrained")
    lanes, lat = fig.subplots(2, 1, sharex=True, height_ratios=[1, 3])
    colors = _kind_colors(nemesis)
    _draw_lanes(lanes, nemesis, colors)
    for w in nemesis:
        lat.axvspan(w.start / 1e9, w.end / 1e9, color=colors[w.f], alpha=0.12, linewidth=0)
    plotted = _draw_ops(lat, ops)
    if plotted:
        lat.set_yscale("log")
    lat.set_xlabel("time since start (s)")
    lat.set_ylabel("latency (ms)")
    lat.legend(handles=_legend_handles(ops), loc="upper left", fontsize=8, ncols=2)
    fig.suptitle(f"{len(ops)} client ops, {len(nemesis)} faults")
    fig.savefig(path, dpi=110)


def _kind_colors(nemesis: list[NemesisWindow]) -> dict[str, Any]:
    kinds = list(dict.fromkeys(w.f for w in nemesis))
    palette = [f"C{i}" for i in range(10)]
    return {kind: palette[i % len(palette)] for i, kind in enumerate(kinds)}


def _draw_lanes(ax: Any, nemesis: list[NemesisWindow], colors: dict[str, Any]) -> None:
    kinds = list(colors)
    for row, kind in enumerate(kinds):
        spans = [(w.start / 1e9, max(w.end - w.start, 1) / 1e9) for w in nemesis if w.f == kind]
        ax.broken_barh(spans, (row - 0.4, 0.8), facecolors=colors[kind], alpha=0.7)
    ax.set_yticks(range(len(kinds)), kinds, fontsize=8)
    ax.set_ylim(-0.6, max(len(kinds), 1) - 0.4)
    ax.set_title("nemesis", fontsize=9, loc="left")


def _draw_ops(ax: Any, ops: list[Op]) -> int:
    groups: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    for op in ops:
        if op.complete_time is None:
            continue
        xs, ys = groups.setdefault((op.type, op.f), ([], []))
        xs.append(op.complete_time / 1e9)
        ys.append(max((op.complete_time - op.invoke_time) / 1e6, MIN_LATENCY_MS))
    for (type_, f), (xs, ys) in sorted(groups.items()):
        ax.scatter(xs, ys, s=9, alpha=0.6, c=TYPE_COLORS.get(type_, "tab:gray"),
                   marker=F_MARKERS.get(f, OTHER_MARKER), linewidths=0.6)
    return sum(len(xs) for xs, _ in groups.values())


def _legend_handles(ops: list[Op]) -> list[Line2D]:
    types = sorted({op.type for op in ops})
    fs = sorted({op.f for op in ops})
    handles = [Line2D([], [], color=TYPE_COLORS.get(t, "tab:gray"), marker="o", linestyle="", label=t) for t in types]
    handles += [Line2D([], [], color="black", marker=F_MARKERS.get(f, OTHER_MARKER), linestyle="", label=f)
                for f in fs]
    return handles


# --- the text summary --------------------------------------------------------------------------


def summarize(results: dict[str, Any], ops: list[Op], nemesis: list[NemesisWindow]) -> str:
    checkers = results.get("checkers") or {}
    lines = [f"verdict: {'VALID' if results.get('valid') else 'INVALID'}"]
    if results.get("error"):
        lines.append(f"  error: {str(results['error']).splitlines()[-1]}")
    width = max((len(name) for name in checkers), default=0)
    lines += [f"  {name:<{width}}  {verdict(r):<8} {facts(r)}" for name, r in checkers.items()]
    lines.append("ops: " + (op_counts(ops) or "none"))
    faults = Counter(w.f for w in nemesis)
    lines.append("faults: " + (", ".join(f"{k} x{n}" for k, n in sorted(faults.items())) or "none"))
    failover = (checkers.get("figures") or {}).get("failover") or {}
    if failover.get("count"):
        lines.append(f"failover: {failover['count']} windows, median {failover['median_ms']} ms, "
                     f"max {failover['max_ms']} ms")
    return "\n".join(lines)


def verdict(result: dict[str, Any]) -> str:
    if "error" in result:
        return "ERROR"
    if not result.get("valid"):
        return "INVALID"
    return "unknown" if result.get("unknown") else "ok"


def facts(result: dict[str, Any]) -> str:
    """The checker's scalar evidence, first few, as k=v."""
    if "error" in result:
        return str(result["error"])[:200]
    items = [(k, v) for k, v in result.items() if k != "valid" and _scalar(v)]
    items += [(f"{k}.{k2}", v2) for k, v in result.items() if isinstance(v, dict) and k not in ("by_state",)
              for k2, v2 in v.items() if _scalar(v2) and k2 in ("count", "median_ms", "max_ms")]
    items.sort(key=lambda kv: kv[1] in (0, None, False, ""))  # what happened first, zero counts last
    return ", ".join(f"{k}={_short(v)}" for k, v in items[:MAX_FACTS])


def _short(value: Any, limit: int = 80) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def op_counts(ops: Iterable[Op]) -> str:
    counts = Counter((op.f, op.type) for op in ops)
    by_f: dict[str, list[str]] = {}
    for (f, type_), n in sorted(counts.items()):
        by_f.setdefault(f, []).append(f"{type_}={n}")
    return "; ".join(f"{f} " + " ".join(parts) for f, parts in by_f.items())


# --- the page ----------------------------------------------------------------------------------


def render_html(
    run: Run,
    results: dict[str, Any],
    ops: list[Op],
    nemesis: list[NemesisWindow],
    summary: str,
    problems: list[str],
    png: Path,
) -> str:
    e = html.escape
    rows = "".join(
        f"<tr class='{verdict(r)}'><td>{e(name)}</td><td>{verdict(r)}</td><td>{e(facts(r))}</td></tr>"
        for name, r in (results.get("checkers") or {}).items()
    )
    details = "".join(
        f"<details><summary>{e(name)}</summary><pre>{e(json.dumps(r, indent=2, default=str))}</pre></details>"
        for name, r in (results.get("checkers") or {}).items()
    )
    image = (f"<img alt='timeline' src='data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}'>"
             if png.exists() else "<p>no timeline: the history holds no operations</p>")
    overall = "VALID" if results.get("valid") else "INVALID"
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>raftsched chaos run: {overall}</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:.2em .8em;text-align:left}}
tr.INVALID,tr.ERROR{{background:#fdd}} tr.unknown{{background:#ffd}} img{{max-width:100%}}
pre{{background:#f6f6f6;padding:.5em;overflow:auto}}</style></head><body>
<h1>raftsched chaos run: {overall}</h1>
{"".join(f"<p class='problem'>{e(p)}</p>" for p in problems)}
<p>{e(_run_line(run))}</p>
<h2>Verdicts</h2>
<table><tr><th>checker</th><th>verdict</th><th>evidence</th></tr>{rows}</table>
<h2>Figures</h2><pre>{e(_figures_text(results))}</pre>
<h2>Operations and faults</h2><pre>{e(summary)}</pre>
<h2>Timeline</h2>{image}
<h2>Evidence</h2>{details}
</body></html>
"""


def _run_line(run: Run) -> str:
    try:
        info = run.info
    except (OSError, ValueError):
        return "run.json unreadable"
    keep = {k: info[k] for k in ("seed", "options", "args", "start", "end") if k in info}
    return json.dumps(keep, default=str)[:600]


def _figures_text(results: dict[str, Any]) -> str:
    figures = (results.get("checkers") or {}).get("figures") or {}
    out = []
    for name in ("failover", "requeue"):
        stats = figures.get(name) or {}
        out.append(f"{name}: count={stats.get('count')} median={stats.get('median_ms')} ms "
                   f"max={stats.get('max_ms')} ms")
    out += [f"{k}: {v}" for k, v in figures.items() if k.endswith(("_note", "never_recovered", "not_measured"))]
    return "\n".join(out)
