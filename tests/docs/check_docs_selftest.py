#!/usr/bin/env python3
"""check_docs.py must be able to fail: a made-up tree whose README names a test pattern,
a label, commands, an option and a make target that do not exist, lists a folder that is
not there and leaves a code block open gets every one of them reported; the same tree
with correct names passes.

Usage: check_docs_selftest.py --build DIR --ctest PATH (the real build: its tests and
its cleave binary are what the names are checked against)."""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

MAKEFILE = "run:\n\ttrue\ntest:\n\ttrue\n"

WRONG = """# Made up

```sh
make deploy
build/bin/cleave frobnicate
build/bin/cleave dlq purge x:1
build/bin/cleave migrate --dry-run
```

Run `ctest -R no_test_has_this_name` or `ctest -L unit` (or `no-such-label`).

```sh
make test
Text that should have come after a closing fence.

```sh
make run
```

## Layout

```
Makefile   the build
deploy/    nothing here
```
"""

EXPECTED = [
    "README.md:16: the fence ```sh opens inside the code block opened at line 12: that block is never closed",
    "README.md:24: the layout lists deploy/, which is not in the tree",
    "README.md:4: `make deploy`: the Makefile has no target deploy",
    "README.md:5: `cleave frobnicate`: cleave --help lists no command frobnicate",
    "README.md:6: `cleave dlq purge`: dlq takes list | replay | drop",
    "README.md:7: `cleave migrate --dry-run`: not an option of migrate (migrate [--status] [--admin-url URL])",
    "README.md:10: `ctest -R no_test_has_this_name` selects no test",
    "README.md:10: `ctest -L no-such-label` selects no test",
    "9 references checked, 8 problems",
]

RIGHT = """# Made up

```sh
make test
build/bin/cleave dlq list
build/bin/cleave migrate --status
```

Run `ctest -R test_openapi` or `ctest -L unit` (or `docs`).

## Layout

```
Makefile   the build
```
"""


def run(tree, opt):
    return subprocess.run([sys.executable, os.path.join(HERE, "check_docs.py"), "--source", tree,
                           "--build", opt.build, "--ctest", opt.ctest],
                          capture_output=True, text=True, check=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--ctest", required=True)
    opt = ap.parse_args()
    tree = tempfile.mkdtemp(prefix="cleave-docs-")
    failures = []
    try:
        with open(os.path.join(tree, "Makefile"), "w", encoding="utf-8") as f:
            f.write(MAKEFILE)
        with open(os.path.join(tree, "README.md"), "w", encoding="utf-8") as f:
            f.write(WRONG)
        wrong = run(tree, opt)
        got = wrong.stdout.splitlines()
        if wrong.returncode != 1:
            failures.append(f"wrong names: exit {wrong.returncode}, expected 1")
        failures.extend(f"not reported: {line}" for line in EXPECTED if line not in got)
        failures.extend(f"reported but not expected: {line}" for line in got if line not in EXPECTED)
        with open(os.path.join(tree, "README.md"), "w", encoding="utf-8") as f:
            f.write(RIGHT)
        right = run(tree, opt)
        if right.returncode != 0:
            failures.append(f"right names: exit {right.returncode}: {right.stdout}{right.stderr}")
    finally:
        shutil.rmtree(tree)
    for failure in failures:
        print(failure)
    print(f"{len(EXPECTED) - 1} wrong names, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
