"""Operator tests: unit tests of the pure logic here, helpers for tests/integration."""

import pytest

# The integration tests load the harness as a plugin (its fixtures) and import from it.
pytest.register_assert_rewrite("tests.operator.harness")
