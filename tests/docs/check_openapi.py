#!/usr/bin/env python3
"""docs/openapi.yaml is valid YAML and a well-formed OpenAPI 3.1 document: every $ref
resolves, every operation has responses and an operationId, every operationId is unique,
and every /api route names its permission (x-permission). Usage: check_openapi.py FILE"""
import sys

import yaml

METHODS = {"get", "put", "post", "patch", "delete"}


def refs(node, out):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                out.append(v)
            else:
                refs(v, out)
    elif isinstance(node, list):
        for v in node:
            refs(v, out)


def resolve(doc, ref):
    if not ref.startswith("#/"):
        return False
    node = doc
    for part in ref[2:].split("/"):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def main(path):
    errors = []
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    if doc.get("openapi") != "3.1.0":
        errors.append("openapi must be 3.1.0")
    for key in ("info", "paths", "components"):
        if key not in doc:
            errors.append(f"missing top-level {key}")
    seen = set()
    for route, item in (doc.get("paths") or {}).items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            where = f"{method.upper()} {route}"
            if not op.get("responses"):
                errors.append(f"{where}: no responses")
            oid = op.get("operationId")
            if not oid:
                errors.append(f"{where}: no operationId")
            elif oid in seen:
                errors.append(f"{where}: operationId {oid} used twice")
            seen.add(oid)
            if route.startswith("/api/") and not op.get("x-permission"):
                errors.append(f"{where}: no x-permission")
    found = []
    refs(doc, found)
    for ref in found:
        if not resolve(doc, ref):
            errors.append(f"unresolved $ref {ref}")
    for e in errors:
        print(f"{path}: {e}")
    if not errors:
        print(f"{path}: {len(seen)} operations, {len(found)} refs, all well formed")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
