"""PASS/FAIL lines of the conformance checks (scripts/conformance-python.sh)."""

import sys


def report(checks):
    """Prints one line per (name, ok, detail) and a summary; exits 1 when any failed."""
    failed = 0
    for name, ok, detail in checks:
        print(f'{"PASS" if ok else "FAIL"}  {name}' + ("" if ok else f"   [{detail}]"))
        failed += not ok
    print(f"{len(checks) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
