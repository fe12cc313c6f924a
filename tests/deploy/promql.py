"""What the shipped monitoring names: the PromQL expressions of deploy/prometheus/alerts.yml and
deploy/grafana/raftsched.json, and the metric names each of them reads.

`metric_names` is a small lexer, not a PromQL parser: it drops strings, label matchers, ranges and
grouping label lists, then keeps every identifier that is not a function, an aggregation or a
keyword. `promtool check rules` (test_promtool.py) is what proves the expressions parse.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "tests"
DASHBOARD = ROOT / "deploy" / "grafana" / "raftsched.json"
INSTALL_SCRIPT = "scripts/install-monitoring-deps.sh"
SYNTHETIC = frozenset({"up"})  # series Prometheus itself makes for every target

KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
                      "group_right", "inf", "nan", "atan2"})
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,")


def promtool() -> str:
    """The promtool binary; a clear failure (never a skip) when it is not installed."""
    found = shutil.which("promtool")
    if found is None:
        raise AssertionError(f"promtool is not installed: run `bash {INSTALL_SCRIPT}` as root "
                             "(Debian package prometheus); .ci/run does this before `make test`")
    return found


def metric_names(expr: str) -> set[str]:
    """Every metric name `expr` selects (bare names and names before a matcher or range)."""
    s = _STRING.sub('""', expr)
    s = _MATCHERS.sub(" ", s)
    s = _RANGE.sub(" ", s)
    s = _GROUPING.sub(" ", s)
    names = set()
    for m in _IDENT.finditer(s):
        before = s[m.start() - 1] if m.start() else " "
        if before.isdigit() or before in ".$":  # 5m, 1e3, 0.5; $variables
            continue
        if s[m.end():].lstrip().startswith("(") or m.group(0).lower() in KEYWORDS:
            continue  # a function or an aggregation, or a keyword
        names.add(m.group(0))
    return names


def rules() -> list[dict[str, str]]:
    """Every rule of alerts.yml (record or alert, with its expr)."""
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def recorded_names() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


def dashboard_exprs() -> list[tuple[str, str]]:
    """(where, expr) for every query of the dashboard: each panel target and each templating query."""
    doc = json.loads(DASHBOARD.read_text())
    out = []
    for panel in _panels(doc["panels"]):
        for target in panel.get("targets", []):
            out.append((f"panel {panel['title']!r} target {target['refId']}", target["expr"]))
    for var in doc.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        m = _LABEL_VALUES.match(query)
        out.append((f"variable {var['name']!r}", m.group(1) if m else query))
    return out


def _panels(panels: list[dict]) -> list[dict]:
    out = []
    for panel in panels:
        out.append(panel)
        out.extend(_panels(panel.get("panels", [])))
    return out


def exported_names(text: str) -> set[str]:
    """Names of the samples in a /metrics page (text exposition format)."""
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names
