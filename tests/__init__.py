"""The tests. Their shared helpers are the package tests.support."""

import pytest

# The helpers of tests/support assert too: rewritten like the test modules, a failing one says
# what it compared. Registered here, before anything imports the package.
pytest.register_assert_rewrite("tests.support")
