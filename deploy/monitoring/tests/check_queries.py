#!/usr/bin/env python3
"""Every PromQL query of the Grafana dashboard and of the rules, checked (ctest -L monitoring).

usage: check_queries.py PROMTOOL SOURCE_ROOT WORK_DIR

- Each panel target and each templating query of deploy/monitoring/grafana/*.json is
  written, with Grafana's variables replaced by values of the same kind, as a recording
  rule into WORK_DIR/dashboard_rules.yml, which `promtool check rules` then parses: a
  query that does not parse fails, naming its panel.
- Every metric name that a dashboard query or a rule selects must be one the code
  declares (CL_METRIC_* in platform/ and app/, with a histogram's _bucket, _sum and
  _count), a recording rule of deploy/monitoring/rules, or Prometheus' own `up`: a typo
  or a renamed metric would parse and show nothing, so it fails here too.
"""
import glob
import json
import os
import re
import subprocess
import sys

# Grafana's variables, replaced by values of the same kind so that the query parses alike.
VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "${datasource}": "prometheus",
    "$datasource": "prometheus",
    "$job": ".*",
    "$route": ".*",
}
# name{ or name[ : a selector; names before "(" are functions, inside braces label names.
SELECTOR = re.compile(r"(?<![\w:\"])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]")
DECLARED = re.compile(r'CL_METRIC_(COUNTER|GAUGE|HISTOGRAM)\(\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"')
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool"}


def substitute(expr):
    for var, value in VARIABLES.items():
        expr = expr.replace(var, value)
    if "$" in expr:
        raise ValueError(f"an unknown Grafana variable in: {expr}")
    return expr


def declared_metrics(root):
    names = {"up"}
    for path in glob.glob(os.path.join(root, "platform", "**", "*.c"), recursive=True) + glob.glob(
        os.path.join(root, "app", "*.c")
    ):
        with open(path, encoding="utf-8") as f:
            for kind, name in DECLARED.findall(f.read()):
                names.add(name)
                if kind == "HISTOGRAM":
                    names.update(name + s for s in ("_bucket", "_sum", "_count"))
    return names


def recording_rules(root):
    names = set()
    for path in glob.glob(os.path.join(root, "deploy", "monitoring", "rules", "*.yml")):
        with open(path, encoding="utf-8") as f:
            names.update(re.findall(r"^\s*-\s*record:\s*(\S+)", f.read(), re.M))
    return names


def rule_exprs(root):
    """(where, expr) of every rule; the rules files keep each expr in a `|` block or inline."""
    out = []
    for path in glob.glob(os.path.join(root, "deploy", "monitoring", "rules", "*.yml")):
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        for i, line in enumerate(lines):
            m = re.match(r"^(\s*)expr:\s*(.*)$", line)
            if not m:
                continue
            if m.group(2).strip() != "|":
                out.append((f"{os.path.basename(path)}:{i + 1}", m.group(2)))
                continue
            block = []
            for nxt in lines[i + 1 :]:
                if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= len(m.group(1)):
                    break
                block.append(nxt)
            out.append((f"{os.path.basename(path)}:{i + 1}", "\n".join(block)))
    return out


def dashboard_exprs(root):
    """(where, expr) of every panel target and templating query of every dashboard."""
    out = []
    for path in sorted(glob.glob(os.path.join(root, "deploy", "monitoring", "grafana", "*.json"))):
        with open(path, encoding="utf-8") as f:
            dash = json.load(f)
        name = os.path.basename(path)

        def walk(panels):
            for p in panels:
                walk(p.get("panels", []))
                if p.get("type") == "row":
                    continue
                targets = p.get("targets", [])
                if not targets:
                    raise ValueError(f"{name}: panel '{p.get('title')}' has no query")
                for t in targets:
                    if not t.get("expr", "").strip():
                        raise ValueError(f"{name}: panel '{p.get('title')}' has an empty query")
                    out.append((f"{name}: panel {p['id']} '{p.get('title')}' {t['refId']}", t["expr"]))

        walk(dash.get("panels", []))
        for v in dash.get("templating", {}).get("list", []):
            q = v.get("query")
            if isinstance(q, dict):
                q = q.get("query")
            if v.get("type") == "query":
                m = re.match(r"^label_values\((.*),\s*\w+\)$", q or "")
                if not m:
                    raise ValueError(f"{name}: variable {v['name']}: not label_values(selector, label)")
                out.append((f"{name}: variable {v['name']}", m.group(1)))
    return out


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    promtool, root, work = sys.argv[1:]
    problems = []
    known = declared_metrics(root) | recording_rules(root)
    dash = dashboard_exprs(root)
    if not dash:
        problems.append("no dashboard query found under deploy/monitoring/grafana")
    os.makedirs(work, exist_ok=True)
    rules_path = os.path.join(work, "dashboard_rules.yml")
    with open(rules_path, "w", encoding="utf-8") as f:
        f.write("groups:\n  - name: dashboard\n    rules:\n")
        for i, (where, expr) in enumerate(dash):
            # json.dumps gives a double-quoted YAML scalar with its escapes.
            f.write(f"      # {where}\n      - record: dashboard:query_{i}\n")
            f.write(f"        expr: {json.dumps(substitute(expr))}\n")
    for where, expr in dash + rule_exprs(root):
        for name in SELECTOR.findall(substitute(expr)):
            if name not in KEYWORDS and name not in known:
                problems.append(f"{where}: selects {name}, which no code declares")
    res = subprocess.run([promtool, "check", "rules", rules_path], capture_output=True, text=True)
    if res.returncode != 0:
        problems.append(f"promtool check rules {rules_path}:\n{res.stdout}{res.stderr}")
    for p in problems:
        print("FAIL", p)
    print(f"{len(dash)} dashboard queries checked by promtool; metric names checked against "
          f"{len(known)} declared names and recording rules")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
