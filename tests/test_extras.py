"""Optional dependencies: a missing one is an ImportError that names the extra to install."""

import sys

import pytest

from mmbook.extras import require


def test_present_module_is_returned():
    assert require("json", "book").dumps([1]) == "[1]"


@pytest.mark.parametrize("module,extra", [("statsmodels.api", "crosscheck"), ("matplotlib.figure", "plots"),
                                          ("arviz", "bayes")])
def test_missing_module_names_the_extra(monkeypatch, module, extra):
    top = module.split(".")[0]
    for name in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, top, None)  # import of a None entry raises ImportError
    with pytest.raises(ImportError, match=rf'pip install "mmbook\[{extra}\]"'):
        require(module, extra)
