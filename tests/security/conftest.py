"""The security tests' report: how many requests the API fuzzing sent, per operation and status."""

from __future__ import annotations

import sys

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    module = sys.modules.get("tests.security.test_api_schema")
    tally = getattr(module, "tally", None)
    if not tally:
        return
    terminalreporter.write_sep("-", f"schemathesis: {sum(tally.values())} requests")
    for (operation, status), count in sorted(tally.items()):
        terminalreporter.write_line(f"{operation:<52} {status}  {count}")
