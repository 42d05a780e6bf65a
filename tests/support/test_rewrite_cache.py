"""The rewrite cache `make test` writes before the workers start is the one pytest reads."""

from __future__ import annotations

import pytest
from _pytest.assertion.rewrite import PYC_TAIL, _read_pyc

from tests.support.rewrite_cache import rewritten, write


def test_a_written_module_is_read_back_with_pytests_assertion_messages(tmp_path):
    module = tmp_path / "test_sample.py"
    module.write_text("def test_sum():\n    total = 1 + 1\n    assert total == 3\n")
    (tmp_path / "helper.py").write_text("X = 1\n")
    assert rewritten(tmp_path) == [module]  # a test module, not a helper
    assert write(module) is True and write(module) is False  # up to date: not written again
    code = _read_pyc(module, tmp_path / "__pycache__" / ("test_sample" + PYC_TAIL))
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102  (the cached module, as pytest runs it)
    with pytest.raises(AssertionError, match=r"assert 2 == 3"):  # rewritten: the values are shown
        namespace["test_sum"]()
    module.write_text("def test_sum():\n    assert 2 == 2\n")  # a changed source invalidates it
    assert write(module) is True
