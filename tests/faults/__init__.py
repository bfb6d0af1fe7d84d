"""The fault group: real worker processes, real dev servers, real databases, real kills."""

import pytest

# The checks live in these helper modules: let pytest show what differed when one fails.
pytest.register_assert_rewrite("tests.faults.harness", "tests.faults.conversations", "tests.faults.kill_scenarios")
