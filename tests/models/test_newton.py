"""The generic M-step's Newton numerics: derivatives and an ascent direction that always
ascends."""

from __future__ import annotations

import pytest
import torch
from emvi.models.newton import ascent_direction, derivatives, squarem_jump
from hypothesis import given, settings
from hypothesis import strategies as st


def test_derivatives_of_a_quadratic_are_exact():
    a = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    b = torch.tensor([1.0, -2.0], dtype=torch.float64)
    theta = torch.tensor([0.5, -1.5], dtype=torch.float64, requires_grad=True)
    value = -0.5 * theta @ a @ theta + b @ theta + theta[0] ** 3
    grad, hessian = derivatives(value, theta)
    x = theta.detach()
    torch.testing.assert_close(grad, -a @ x + b + torch.tensor([3 * x[0] ** 2, 0.0],
                                                               dtype=torch.float64))
    torch.testing.assert_close(hessian, -a + torch.diag(torch.tensor([6 * x[0], 0.0],
                                                                     dtype=torch.float64)))


def test_a_parameter_the_value_ignores_gets_zero_derivatives():
    theta = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    grad, hessian = derivatives(theta[0] * 3.0, theta)  # linear: no second-order graph
    torch.testing.assert_close(grad, torch.tensor([3.0, 0.0], dtype=torch.float64))
    assert torch.equal(hessian, torch.zeros(2, 2, dtype=torch.float64))


def test_the_newton_direction_maximises_a_concave_quadratic_in_one_step():
    a = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    b = torch.tensor([2.0, -1.0], dtype=torch.float64)
    x = torch.tensor([5.0, 5.0], dtype=torch.float64)
    step = ascent_direction(-a @ x + b, -a)
    torch.testing.assert_close(x + step, torch.linalg.solve(a, b))


@settings(max_examples=30)
@given(st.lists(st.floats(-5, 5), min_size=9, max_size=9),
       st.lists(st.floats(-5, 5), min_size=3, max_size=3))
def test_the_direction_ascends_whatever_the_curvature(entries, gradient):
    """Indefinite or singular Hessians included: ``g . d >= 0``, and ``> 0`` unless g = 0."""
    m = torch.tensor(entries, dtype=torch.float64).reshape(3, 3)
    hessian = m + m.T
    grad = torch.tensor(gradient, dtype=torch.float64)
    step = ascent_direction(grad, hessian)
    assert bool(torch.isfinite(step).all())
    slope = float(grad @ step)
    assert slope >= 0.0
    if float(grad.abs().max()) > 1e-6:
        assert slope > 0.0


def test_a_non_finite_gradient_gives_no_step():
    grad = torch.tensor([float("nan"), 1.0], dtype=torch.float64)
    assert torch.equal(ascent_direction(grad, -torch.eye(2, dtype=torch.float64)),
                       torch.zeros(2, dtype=torch.float64))


@settings(max_examples=25)
@given(st.floats(0.05, 0.999), st.floats(-10, 10), st.floats(-10, 10))
def test_squarem_lands_on_the_fixed_point_of_a_linear_contraction(rate, fixed, start):
    """``F(t) = fixed + rate (t - fixed)`` in one dimension (EM's linear convergence near
    an optimum): one S3 jump from two steps is the fixed point itself."""
    def f(t):
        return fixed + rate * (t - fixed)

    t0 = torch.tensor([start], dtype=torch.float64)
    if abs(start - fixed) < 1e-3:
        return
    jump, step = squarem_jump(t0, f(t0), f(f(t0)))
    torch.testing.assert_close(jump, torch.tensor([fixed], dtype=torch.float64),
                               atol=1e-9, rtol=1e-9)
    assert step == pytest.approx(1 / (1 - rate))
    # a cap on the step length: a shorter jump along the same line, not past it
    capped, short = squarem_jump(t0, f(t0), f(f(t0)), largest=1.0)
    assert short == 1.0
    torch.testing.assert_close(capped, f(f(t0)), atol=1e-12, rtol=1e-12)


def test_squarem_steps_at_least_as_far_as_two_plain_steps():
    """The step length is at least 1, where the jump is ``t2`` (a map that overshoots)."""
    t0 = torch.tensor([1.0, 2.0], dtype=torch.float64)
    t1, t2 = -t0, t0 * 0.5  # |r| / |v| < 1: the floor decides
    jump, step = squarem_jump(t0, t1, t2)
    assert step == 1.0
    torch.testing.assert_close(jump, t2, atol=1e-12, rtol=0)


def test_squarem_gives_no_jump_without_curvature_or_from_non_finite_steps():
    t0 = torch.tensor([1.0, 2.0], dtype=torch.float64)
    assert squarem_jump(t0, t0 + 1, t0 + 2) is None  # v = 0: a straight line
    assert squarem_jump(t0, t0 + 1, torch.full_like(t0, float("inf"))) is None
