"""The argument checks: one wording, TypeError for a type, ValueError for a value, the name the caller gave."""

import numpy as np
import pytest

from diffii_datasets import _checks


def test_int_checks():
    assert _checks.check_int(4, "steps", minimum=1) == 4
    assert _checks.check_int(np.int64(3), "steps", minimum=1) == 3 and type(_checks.check_int(np.int64(3), "s")) is int
    for bad, error in [(0, ValueError), (-1, ValueError), (2.0, TypeError), (True, TypeError), ("4", TypeError)]:
        with pytest.raises(error, match="^steps must be a positive int, got "):
            _checks.check_int(bad, "steps", minimum=1)
    with pytest.raises(TypeError, match="^steps must be a positive int, got float 2.0$"):
        _checks.check_int(2.0, "steps", minimum=1)
    with pytest.raises(ValueError, match=r"^k must be an int in \[1, 3\], got 4$"):
        _checks.check_int(4, "k", minimum=1, maximum=3)


def test_number_checks():
    assert _checks.check_number(7, "guidance_scale", minimum=0) == 7.0
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="^guidance_scale must be a finite number >= 0"):
            _checks.check_number(bad, "guidance_scale", minimum=0)
    with pytest.raises(TypeError, match="^p must be a finite number in \\[0, 1\\], got str '0.5'$"):
        _checks.check_number("0.5", "p", minimum=0, maximum=1)
    with pytest.raises(ValueError, match="^rate must be a finite number > 0, got 0.0$"):
        _checks.check_number(0, "rate", above=0)


def test_seed_string_choice_and_sequence_checks():
    assert _checks.check_seed(2**63 - 1) == 2**63 - 1
    with pytest.raises(ValueError, match="^seed must be a non-negative int below 2\\*\\*63, got 18446744073709551616"):
        _checks.check_seed(2**64)
    with pytest.raises(ValueError, match="^metaclass must be a non-empty single-line string, got 'bird\\\\nx'"):
        _checks.check_one_line("bird\nx", "metaclass")
    with pytest.raises(ValueError, match="^mode must be one of 'replace', 'concat', got 'mix'"):
        _checks.check_choice("mix", "mode", ("replace", "concat"))
    assert _checks.check_str_sequence(["a", "b"], "classes") == ("a", "b")
    with pytest.raises(TypeError, match="^classes must be a non-empty list of non-empty strings, got str 'ab'"):
        _checks.check_str_sequence("ab", "classes")
    with pytest.raises(ValueError, match="^classes must be"):
        _checks.check_str_sequence(["a", " "], "classes")
    with pytest.raises(TypeError, match="^flag must be a bool"):
        _checks.check_bool(1, "flag")
