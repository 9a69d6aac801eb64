"""Safeguarded Newton steps for a small smooth objective (the generic M-step's numerics).

Pure functions of tensors: the gradient and Hessian of a scalar built from a flat
parameter vector, and an ascent direction from them that exists even where the Hessian
is not negative definite.
"""

from __future__ import annotations

import torch


def derivatives(value: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient and Hessian of ``value`` with respect to the leaf ``theta``.

    Args:
        value: a scalar, a differentiable function of ``theta`` (its graph is kept).
        theta: ``(P,)`` leaf tensor.

    Returns:
        ``(gradient (P,), hessian (P, P))``, detached; zeros where ``value`` does not
        depend on an entry.
    """
    (grad,) = torch.autograd.grad(value, theta, create_graph=True, retain_graph=True)
    rows = []
    for p in range(theta.numel()):
        if grad[p].requires_grad:
            (row,) = torch.autograd.grad(grad[p], theta, retain_graph=True, allow_unused=True)
            rows.append(torch.zeros_like(theta) if row is None else row)
        else:
            rows.append(torch.zeros_like(theta))
    hessian = torch.stack(rows)
    return grad.detach(), 0.5 * (hessian + hessian.mT).detach()


def ascent_direction(grad: torch.Tensor, hessian: torch.Tensor) -> torch.Tensor:
    """A Newton direction for *maximising*: ``-H^{-1} g`` where ``H`` is negative definite,
    with each eigenvalue replaced by minus its absolute value (floored relative to the
    largest) otherwise, so the direction always ascends (``g . d >= 0``).

    Args:
        grad: ``(P,)`` gradient; hessian: ``(P, P)`` symmetric Hessian.

    Returns:
        ``(P,)`` direction; zeros where the gradient or the Hessian is not finite.
    """
    return direction(grad, curvature(hessian))


def curvature(hessian: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The factor :func:`direction` uses, computed once per Hessian: ``(scales (P,),
    basis (P, P))``, the absolute eigenvalues of ``-H`` (floored at 1e-10 of the largest;
    all ones where ``H = 0``: a gradient step) and its eigenvectors; ``None`` when ``H`` is
    not finite."""
    if not bool(torch.isfinite(hessian).all()):
        return None
    values, basis = torch.linalg.eigh(-hessian)
    scale = float(values.abs().max()) if values.numel() else 0.0
    if scale == 0.0:
        return torch.ones_like(values), torch.eye(len(values), dtype=hessian.dtype)
    return values.abs().clamp_min(1e-10 * scale), basis


def direction(grad: torch.Tensor, factor) -> torch.Tensor:
    """The ascent direction from ``grad`` and a :func:`curvature` factor (zeros where
    either is not finite)."""
    if factor is None or not bool(torch.isfinite(grad).all()):
        return torch.zeros_like(grad)
    scales, basis = factor
    return basis @ ((basis.mT @ grad) / scales)


def squarem_jump(t0: torch.Tensor, t1: torch.Tensor, t2: torch.Tensor,
                 largest: float = float("inf")) -> tuple[torch.Tensor, float] | None:
    """SQUAREM's extrapolation (Varadhan & Roland 2008, scheme S3) from two steps of a
    fixed-point map ``F``: ``t1 = F(t0)``, ``t2 = F(t1)``.

    With ``r = t1 - t0``, ``v = t2 - 2 t1 + t0`` and the step length
    ``s = min(max(|r| / |v|, 1), largest)``, the point ``t0 + 2 s r + s^2 v`` (``t2`` itself
    at ``s = 1``; the fixed point of a one-dimensional linear contraction exactly when
    ``largest`` allows).

    Args:
        t0, t1, t2: ``(P,)`` iterates.
        largest: the longest step length allowed (at least 1).

    Returns:
        ``(point (P,), s)``; ``None`` where ``v`` is zero or not finite, or the point is
        not finite.
    """
    r, v = t1 - t0, t2 - 2 * t1 + t0
    length = float(torch.linalg.vector_norm(v))
    if not 0 < length < float("inf"):
        return None
    step = min(max(float(torch.linalg.vector_norm(r)) / length, 1.0), max(largest, 1.0))
    point = t0 + 2 * step * r + step**2 * v
    return (point, step) if bool(torch.isfinite(point).all()) else None
