"""The codec option schema: one declaration gives parsing, ranges, defaults and errors."""

import pytest

from gancomp.codecs.base import Option, validate_options
from gancomp.errors import InputError

OPTS = (Option("tile", int, 1024, "tile size", lo=64, hi=4096),
        Option("loss", str, "mse", "loss", choices=("mse", "ssim")),
        Option("adapt", bool, False, "adapt"),
        Option("lam", float, None, "lambda", lo=0.0, hi=1.0))


def test_parses_and_fills_defaults():
    assert validate_options("x", OPTS, {"tile": "256", "adapt": "yes"}) == {
        "tile": 256, "loss": "mse", "adapt": True}
    assert validate_options("x", OPTS, {"lam": "0.5"}, fill_defaults=False) == {"lam": 0.5}


@pytest.mark.parametrize("bad", [{"tile": "abc"}, {"tile": "0"}, {"tile": 2.5}, {"loss": "x"},
                                 {"foo": 1}, {"device": "gpu"}, {"lam": "nan"},
                                 {"adapt": "maybe"}, {"lam": 2}])
def test_bad_values_are_one_line_input_errors(bad):
    with pytest.raises(InputError) as e:
        validate_options("x", OPTS, bad)
    assert "\n" not in str(e.value)
