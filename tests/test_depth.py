"""study.depth's fits: an additive cost is recognised as additive, an interaction as an interaction."""

import pytest

from study.depth import least_squares, slope


def rows(cost):
    return [
        {"pixels": size * size, "depth": depth, "step_seconds": cost(size * size, depth)}
        for size in (32, 48, 64)
        for depth in (1, 2, 4, 8)
    ]


def test_an_additive_cost_fits_without_interaction():
    additive = rows(lambda pixels, depth: 0.01 + 2e-5 * pixels + 4e-3 * depth)
    coefficients, r2 = least_squares(additive, [lambda r: 1.0, lambda r: r["pixels"], lambda r: r["depth"]])
    assert coefficients == pytest.approx([0.01, 2e-5, 4e-3]) and r2 == pytest.approx(1.0)
    columns = [lambda r: 1.0, lambda r: r["pixels"], lambda r: r["depth"], lambda r: r["pixels"] * r["depth"]]
    assert least_squares(additive, columns)[0][3] == pytest.approx(0.0, abs=1e-12)


def test_an_interaction_is_found_and_the_additive_fit_misses_it():
    coupled = rows(lambda pixels, depth: 1e-6 * pixels * depth)
    _, additive_r2 = least_squares(coupled, [lambda r: 1.0, lambda r: r["pixels"], lambda r: r["depth"]])
    columns = [lambda r: 1.0, lambda r: r["pixels"], lambda r: r["depth"], lambda r: r["pixels"] * r["depth"]]
    coefficients, r2 = least_squares(coupled, columns)
    assert coefficients[3] == pytest.approx(1e-6) and r2 == pytest.approx(1.0) and additive_r2 < 0.99
    assert slope([(1, 2.0), (2, 4.0), (4, 8.0)]) == pytest.approx(2.0)
