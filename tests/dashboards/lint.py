"""lint.py - our own rules for the dashboards and provisioning in dashboards/,
on top of Grafana's schema (validate.js): what makes a dashboard usable at
3 a.m. on any machine. Usage: lint.py DASHBOARDS_DIR. Prints one line per
problem and exits 1 if there is any."""
import glob
import json
import os
import re
import sys

import yaml

REQUIRED_VARS = ["datasource", "job", "instance"]
# ... and, on a dashboard over leakscope's own series, its labels.
LEAKSCOPE_VARS = ["process", "role", "subsystem"]
DS_REFS = ("${datasource}", "$datasource")
# Every selector in a panel is narrowed by the dashboard's filters.
REQUIRED_MATCHERS = ['job=~"$job"', 'instance=~"$instance"']
HARD_CODED = [
    (re.compile(r'\b(instance|pid|job)\s*=~?\s*"(?!\$)'), "hard-coded instance/pid/job matcher"),
    (re.compile(r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b"), "hard-coded IP address"),
    (re.compile(r"\blocalhost\b"), "hard-coded host"),
]

problems = []


def problem(where, what):
    problems.append(f"{where}: {what}")


def call_args(expr, start):
    """Text inside the parentheses opening at expr[start]."""
    depth = 0
    for i in range(start, len(expr)):
        if expr[i] == "(":
            depth += 1
        elif expr[i] == ")":
            depth -= 1
            if depth == 0:
                return expr[start + 1:i]
    return expr[start + 1:]


def check_ranges(where, expr):
    """rate/irate over $__rate_interval; increase over it or $__range."""
    for m in re.finditer(r"\b(rate|irate|increase)\s*\(", expr):
        inner = call_args(expr, m.end() - 1)
        ranges = re.findall(r"\[([^\]]*)\]", inner)
        allowed = ["$__rate_interval"] + (["$__range"] if m.group(1) == "increase" else [])
        if not ranges or ranges[-1] not in allowed:
            problem(where, f"{m.group(1)}() over {ranges[-1:] or 'nothing'}, not {' or '.join(allowed)}")


def check_expr(where, expr, panel_query=True):
    if not expr.strip():
        problem(where, "empty query")
        return
    check_ranges(where, expr)
    for rx, what in HARD_CODED:
        if rx.search(expr):
            problem(where, f"{what} in {expr!r}")
    if panel_query:
        for sel in re.finditer(r"\b((?:leakscope|crawler)_\w+)\s*\{([^}]*)\}|\b((?:leakscope|crawler)_\w+)\b(?!\s*\{)",
                               expr):
            name = sel.group(1) or sel.group(3)
            body = sel.group(2) or ""
            for m in REQUIRED_MATCHERS:
                if m not in body:
                    problem(where, f"{name} without {m}")


def ds_ok(ds):
    return isinstance(ds, dict) and ds.get("uid") in DS_REFS and ds.get("type") == "prometheus"


def lint_dashboard(path, uids, titles):
    name = os.path.basename(path)
    d = json.load(open(path))
    for key, seen in (("uid", uids), ("title", titles)):
        if not d.get(key):
            problem(name, f"no {key}")
        elif d[key] in seen:
            problem(name, f"{key} {d[key]!r} also in {seen[d[key]]}")
        else:
            seen[d[key]] = name

    variables = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
    required = REQUIRED_VARS + (LEAKSCOPE_VARS if "leakscope_" in json.dumps(d.get("panels")) else [])
    for v in required:
        if v not in variables:
            problem(name, f"no ${v} variable")
    dsv = variables.get("datasource", {})
    if dsv and (dsv.get("type") != "datasource" or dsv.get("query") != "prometheus"):
        problem(name, "$datasource is not a Prometheus datasource variable")
    for v in variables.values():
        where = f"{name} variable ${v['name']}"
        if not v.get("description"):
            problem(where, "no description")
        if v["type"] == "query":
            if not ds_ok(v.get("datasource")):
                problem(where, "datasource is not ${datasource}")
            q = v.get("query")
            q = q.get("query", "") if isinstance(q, dict) else q or ""
            check_expr(where, q, panel_query=False)

    for a in d.get("annotations", {}).get("list", []):
        if a.get("builtIn"):
            continue
        where = f"{name} annotation {a.get('name')!r}"
        if not ds_ok(a.get("datasource")):
            problem(where, "datasource is not ${datasource}")
        check_expr(where, a.get("expr", ""))

    ids = {}
    panels = []
    for p in d.get("panels", []):
        panels.append(p)
        panels.extend(p.get("panels", []))
    for p in panels:
        where = f"{name} panel {p.get('id')} {p.get('title')!r}"
        if not isinstance(p.get("id"), int):
            problem(where, "no numeric id")
        elif p["id"] in ids:
            problem(where, f"id also used by {ids[p['id']]!r}")
        else:
            ids[p["id"]] = p.get("title")
        if p.get("type") == "row":
            continue
        if not p.get("description", "").strip():
            problem(where, "no description")
        if not p.get("fieldConfig", {}).get("defaults", {}).get("unit"):
            problem(where, "no unit")
        if not ds_ok(p.get("datasource")):
            problem(where, "panel datasource is not ${datasource}")
        targets = p.get("targets", [])
        if not targets:
            problem(where, "no queries")
        refs = set()
        for t in targets:
            tw = f"{where} query {t.get('refId')}"
            if t.get("refId") in refs:
                problem(tw, "duplicate refId")
            refs.add(t.get("refId"))
            if not ds_ok(t.get("datasource")):
                problem(tw, "datasource is not ${datasource}")
            check_expr(tw, t.get("expr", ""))
    return d


def lint_provisioning(root, dashboards):
    ds_files = glob.glob(os.path.join(root, "provisioning/datasources/*.yml"))
    db_files = glob.glob(os.path.join(root, "provisioning/dashboards/*.yml"))
    if not ds_files:
        problem("provisioning", "no datasource provisioning file")
    if not db_files:
        problem("provisioning", "no dashboard provider file")
    uids = set()
    for f in ds_files:
        y = yaml.safe_load(open(f))
        for ds in y.get("datasources", []):
            if ds.get("type") != "prometheus" or not ds.get("url") or not ds.get("uid"):
                problem(f, f"datasource {ds.get('name')!r} needs type prometheus, a url and a uid")
            uids.add(ds.get("uid"))
    for f in db_files:
        y = yaml.safe_load(open(f))
        for prov in y.get("providers", []):
            path = prov.get("options", {}).get("path", "")
            if prov.get("type") != "file" or not path.endswith("/grafana"):
                problem(f, f"provider {prov.get('name')!r} must be a file provider of dashboards/grafana")
    for name, d in dashboards.items():
        cur = next((v.get("current", {}).get("value") for v in d["templating"]["list"]
                    if v["name"] == "datasource"), None)
        if cur not in uids:
            problem(name, f"$datasource defaults to {cur!r}, not a provisioned datasource ({sorted(uids)})")


def main():
    root = sys.argv[1]
    files = sorted(glob.glob(os.path.join(root, "grafana/*.json")))
    if not files:
        problem(root, "no dashboards")
    uids, titles, dashboards = {}, {}, {}
    for f in files:
        dashboards[os.path.basename(f)] = lint_dashboard(f, uids, titles)
    lint_provisioning(root, dashboards)
    for p in problems:
        print("FAIL -", p)
    print(f"lint: {len(files)} dashboards, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
