#!/usr/bin/env python3
"""The Markdown names only what exists.

Usage: check_docs.py --source DIR --build DIR --ctest PATH

In README.md and docs/**/*.md, inside code (fenced blocks and `inline` spans):
  - every `ctest -R <regex>` and `ctest -L <label>` selects at least one test of the build
    (asked of ctest itself: `ctest -N`, fixtures left out);
  - every `cleave <command>` (and `cleave-<module> <command>`) is a command of the built
    binary: the binary, given the command and an argument it cannot accept, must not
    answer "unknown command"; sub-commands and options must be in its --help;
  - every `make <target>` is a target of the Makefile (asked of make: `make -pRrq`).
The top-level entries of the README's Layout block exist. In every Markdown file of the tree, every code fence is closed, and no fence with an info
string (```sh) opens inside a block, which means the block above it was never closed.
"""
import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
SKIP_DIRS = {".git", "build", "node_modules", "var"}
PROBE_ARG = "--cleave-docs-probe"


def markdown_files(source, only_docs):
    if only_docs:
        found = [os.path.join(source, "README.md")]
        root = os.path.join(source, "docs")
    else:
        found = []
        root = source
    for top, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        found.extend(os.path.join(top, f) for f in sorted(files) if f.endswith(".md"))
    return [f for f in found if os.path.isfile(f)]


def check_fences(path, lines, findings):
    """CommonMark's rule: a fence closes with the same character, at least as long, and
    nothing but spaces after it; a line like ```sh inside a block is therefore content."""
    open_at, open_fence = None, None
    for n, line in enumerate(lines, 1):
        m = FENCE.match(line)
        if not m:
            continue
        fence, info = m.group(1), m.group(2).strip()
        if open_at is None:
            open_at, open_fence = n, fence
        elif fence[0] == open_fence[0] and len(fence) >= len(open_fence) and not info:
            open_at, open_fence = None, None
        elif info:
            findings.append(f"{path}:{n}: the fence {fence}{info} opens inside the code block "
                            f"opened at line {open_at}: that block is never closed")
    if open_at is not None:
        findings.append(f"{path}:{open_at}: the code block opened here is never closed")


def code_snippets(lines):
    """Yields (line number, code text, text after it on the line) for fenced block lines
    (shell comments removed) and inline code spans of prose."""
    open_fence = None
    for n, line in enumerate(lines, 1):
        m = FENCE.match(line)
        if m and (open_fence is None or (m.group(1)[0] == open_fence[0] and not m.group(2).strip())):
            open_fence = m.group(1) if open_fence is None else None
            continue
        if open_fence is not None:
            yield n, re.sub(r"(^|\s)#.*$", "", line), ""
            continue
        for span in re.finditer(r"(`+)(.+?)\1", line):
            yield n, span.group(2), line[span.end():]


def words(text):
    try:
        return shlex.split(text, comments=False)
    except ValueError:
        return text.split()


def command_words(text, name_re):
    """The words after each mention of a command, up to a shell operator."""
    for m in re.finditer(r"(?:^|[\s/=;&|(])(" + name_re + r")(?=\s|$)(.*)", text):
        rest = re.split(r"[|;&]|\s#", m.group(2), maxsplit=1)[0]
        yield m.group(1), words(rest)


def ctest_selections(text, after):
    found = []
    for _, args in command_words(text, r"ctest"):
        for i, arg in enumerate(args[:-1]):
            if arg in ("-R", "--tests-regex", "-L", "--label-regex"):
                found.append(("-L" if arg in ("-L", "--label-regex") else "-R", args[i + 1]))
    # "`ctest -L unit` (or `contract`, `e2e`)": the alternatives are labels too.
    if found and found[-1][0] == "-L":
        more = re.match(r"\s*\(or\s+((?:`[^`]+`[\s,]*)+)\)", after)
        if more:
            found.extend(("-L", label) for label in re.findall(r"`([^`]+)`", more.group(1)))
    return found


def ctest_count(ctest, build, flag, pattern):
    out = subprocess.run([ctest, "--test-dir", build, "-N", flag, pattern, "-FA", ".*"],
                         capture_output=True, text=True, check=False).stdout
    m = re.search(r"Total Tests: (\d+)", out)
    return int(m.group(1)) if m else 0


class Binary:
    """What the built binary says about its commands."""

    def __init__(self, path):
        self.path = path
        self.commands = {}
        help_text = subprocess.run([path, "--help"], capture_output=True, text=True,
                                   timeout=30, check=False).stdout
        in_commands = False
        for line in help_text.splitlines():
            if line.startswith("commands:"):
                in_commands = True
            elif in_commands and re.match(r"^  \S", line):
                signature = re.split(r"\s{2,}", line.strip())[0]
                self.commands[signature.split()[0]] = signature
            elif in_commands and line and not line.startswith(" "):
                in_commands = False

    def rejects_as_unknown(self, command, sub):
        """Runs the command with an argument it cannot take: the binary must fail on the
        argument, not on the command. Throwaway data and a free port, should one start."""
        argv = [self.path, command] + ([sub] if sub else []) + [PROBE_ARG]
        with tempfile.TemporaryDirectory() as data:
            env = dict(os.environ, CLEAVE_DATA_DIR=data, CLEAVE_LISTEN="127.0.0.1:0")
            run = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env,
                                 check=False)
        return "unknown command" in run.stderr


def check_cleave(where, binary_name, args, bins, findings):
    i = 0
    while i < len(args) and args[i].startswith("--"):
        i += 2 if args[i] == "--config" else 1
    if i >= len(args) or not re.fullmatch(r"[a-z][a-z-]*", args[i]):
        return
    command, rest = args[i], args[i + 1:]
    path = os.path.join(bins["dir"], binary_name)
    if not os.path.isfile(path):
        findings.append(f"{where}: `{binary_name} {command}`: {binary_name} is not a binary "
                        f"of the build ({path})")
        return
    if path not in bins:
        bins[path] = Binary(path)
    binary = bins[path]
    signature = binary.commands.get(command)
    if signature is None:
        findings.append(f"{where}: `{binary_name} {command}`: {binary_name} --help lists no "
                        f"command {command}")
        return
    alternatives = [w for w in re.findall(r"[a-z][a-z-]*|--[a-z][a-z-]*", signature)[1:]
                    if not w.startswith("--")]
    sub = None
    if alternatives and rest and re.fullmatch(r"[a-z][a-z-]*", rest[0]):
        sub = rest[0]
        if sub not in alternatives:
            findings.append(f"{where}: `{binary_name} {command} {sub}`: {command} takes "
                            f"{' | '.join(alternatives)}")
            return
    for arg in rest:
        option = arg.split("=")[0]
        if option.startswith("--") and option not in signature:
            findings.append(f"{where}: `{binary_name} {command} {option}`: not an option of "
                            f"{command} ({signature})")
    if binary.rejects_as_unknown(command, sub):
        findings.append(f"{where}: `{binary_name} {command}`: the binary answers unknown command")


def check_layout(source, rel, lines, findings):
    """The top-level entries of the README's Layout block exist in the tree."""
    in_layout, in_block = False, False
    for n, line in enumerate(lines, 1):
        if line.startswith("## "):
            in_layout = line.strip() == "## Layout"
        elif in_layout and FENCE.match(line):
            in_block = not in_block
        elif in_layout and in_block and line and not line[0].isspace():
            names = re.match(r"[\w.<>/-]+(?:,\s*[\w.<>/-]+)*", line).group(0)
            for entry in (e.strip() for e in names.split(",")):
                if entry and "<" not in entry and not os.path.exists(os.path.join(source, entry)):
                    findings.append(f"{rel}:{n}: the layout lists {entry}, which is not in "
                                    f"the tree")


def make_targets(source):
    out = subprocess.run(["make", "-C", source, "-pRrq", ":"], capture_output=True, text=True,
                         check=False).stdout
    targets, in_files = set(), False
    for line in out.splitlines():
        if line.startswith("# Files"):
            in_files = True
        elif line.startswith("# Finished Make data base"):
            in_files = False
        elif in_files and not line.startswith(("#", "\t", ".")) and ":" in line:
            name = line.split(":", 1)[0]
            if name and " " not in name and not line.split(":", 1)[1].startswith("="):
                targets.add(name)
    return targets


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True)
    ap.add_argument("--build", required=True)
    ap.add_argument("--ctest", required=True)
    opt = ap.parse_args()
    findings, checked = [], 0
    bins = {"dir": os.path.join(opt.build, "bin")}
    targets = make_targets(opt.source)
    if not {"test", "run"} <= targets:
        findings.append(f"make -pRrq found no targets test and run in {opt.source}/Makefile")

    for path in markdown_files(opt.source, only_docs=False):
        with open(path, encoding="utf-8") as f:
            check_fences(os.path.relpath(path, opt.source), f.read().splitlines(), findings)

    for path in markdown_files(opt.source, only_docs=True):
        rel = os.path.relpath(path, opt.source)
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        check_layout(opt.source, rel, lines, findings)
        for n, code, after in code_snippets(lines):
            where = f"{rel}:{n}"
            for flag, pattern in ctest_selections(code, after):
                if "<" in pattern or "$" in pattern:
                    continue
                checked += 1
                if ctest_count(opt.ctest, opt.build, flag, pattern) == 0:
                    findings.append(f"{where}: `ctest {flag} {pattern}` selects no test")
            for binary_name, args in command_words(code, r"cleave(?:-[a-z]+)?"):
                checked += 1
                check_cleave(where, binary_name, args, bins, findings)
            for _, args in command_words(code, r"make"):
                if args and re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]*", args[0]):
                    checked += 1
                    if args[0] not in targets:
                        findings.append(f"{where}: `make {args[0]}`: the Makefile has no "
                                        f"target {args[0]}")
    for finding in findings:
        print(finding)
    print(f"{checked} references checked, {len(findings)} problems")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
