"""What a sequential phase hands on to the next one (search.carry)."""
import pytest
from pydantic import ValidationError

from codesign.search.config import SearchConfig
from codesign.search.rows import Row, phase_choice

OBJ = ["accuracy", "latency_ms", "energy_mj"]


def _row(n, acc, lat, en, feasible=True):
    return Row("sequential", "arch", n, {"accuracy": acc, "latency_ms": lat, "energy_mj": en}, feasible, None)


ROWS = [_row(0, 0.99, 10.0, 10.0), _row(1, 0.97, 1.2, 1.1), _row(2, 0.90, 1.0, 1.0),
        _row(3, 0.99, 12.0, 12.0),                     # as accurate as row 0, dearer: dominated
        _row(4, 0.999, 0.5, 0.5, feasible=False)]      # infeasible: never handed on


def test_knee_is_the_balanced_member():
    assert phase_choice(ROWS, OBJ, "knee").number == 1


def test_accuracy_is_the_most_accurate_feasible_front_member():
    assert phase_choice(ROWS, OBJ, "accuracy").number == 0


def test_carry_rule_is_validated():
    assert SearchConfig(search={"carry": "accuracy"}).search.carry == "accuracy"
    with pytest.raises(ValidationError):
        SearchConfig(search={"carry": "best"})
