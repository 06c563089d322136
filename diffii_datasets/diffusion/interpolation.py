"""Interpolation between DDIM inversions: random circle interpolation (paper Eq. 5) and its ablations.

Circle interpolation rotates from ``a`` in the plane of ``a`` and ``b``, first away
from ``b`` (the long arc, spherical extrapolation, Eq. 7) and then back through
``b`` along the short arc (spherical interpolation, Eq. 6). With
``theta = lam * alpha``, alpha the angle between the flattened latents, Eq. 5 is

    Z = sin(alpha + theta) / sin(alpha) * a - sin(theta) / sin(alpha) * b

so ``lam = 0`` gives ``a``, ``lam = 2*pi/alpha - 1`` gives ``b`` and
``lam = 2*pi/alpha`` closes the circle. Eq. 6 is Eq. 5 at ``-lam`` and Eq. 7 is
Eq. 5 with ``lam`` restricted to ``[0, 2*pi/alpha - 1]``.

Every function takes either one pair (``a`` and ``b`` of any equal shape, a scalar
``lam``, one angle over all elements) or a batch (``a`` and ``b`` of shape
``[B, ...]``, ``lam`` of shape ``[B]``, one angle per row). The arithmetic runs in
float64 and the result has the inputs' dtype. Degenerate pairs never give NaN:
identical directions (alpha ~ 0) use the limit ``(1 + lam) a - lam b`` of Eq. 5,
and opposite directions (alpha ~ pi), whose plane is undefined, rotate ``a``
towards a fixed direction orthogonal to it, with ``b``'s norm, so the circle
still passes through ``a`` and, for ``b = -a``, through ``b``.

This module is pure tensor math: it imports only torch. :data:`METHODS` dispatches
the names that ``GenerationConfig.interpolation`` accepts
(:data:`~diffii_datasets.diffusion.config.INTERPOLATION_METHODS`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from diffii_datasets.diffusion.config import INTERPOLATION_METHODS


__all__ = [
    "METHODS",
    "circle_interpolate",
    "interpolate",
    "interpolation_angle",
    "lam_upper_bound",
    "linear_interpolate",
    "random_circle_interpolate",
    "random_interpolate",
    "spherical_extrapolate",
    "spherical_interpolate",
]

# Angles closer than this (radians) to 0 or pi are treated as degenerate: there
# 1 / sin(alpha) amplifies rounding error beyond float64's reach.
_DEGENERATE_ANGLE = 1e-6


def _rows(a: torch.Tensor, b: torch.Tensor, batched: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate ``a`` and ``b`` and flatten them to float64 rows ``[B, D]`` (one row unless ``batched``)."""
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        raise TypeError(f"a and b must be torch tensors, got {type(a).__name__} and {type(b).__name__}")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if not a.is_floating_point() or not b.is_floating_point():
        raise TypeError(f"a and b must be floating point, got {a.dtype} and {b.dtype}")
    if a.numel() == 0:
        raise ValueError(f"a and b must not be empty, got shape {tuple(a.shape)}")
    if batched and a.ndim < 2:
        raise ValueError(f"batched a and b must have shape [B, ...] with at least 2 dimensions, got {tuple(a.shape)}")
    rows = a.shape[0] if batched else 1
    return a.reshape(rows, -1).double(), b.reshape(rows, -1).double()


def _is_batched(lam: float | torch.Tensor) -> bool:
    if isinstance(lam, bool) or not isinstance(lam, (int, float, torch.Tensor)):
        raise TypeError(f"lam must be a number or a tensor, got {type(lam).__name__}")
    if isinstance(lam, torch.Tensor) and lam.ndim > 1:
        raise ValueError(f"lam must be a scalar or a tensor of shape [B], got shape {tuple(lam.shape)}")
    return isinstance(lam, torch.Tensor) and lam.ndim == 1


def _prepare(a: torch.Tensor, b: torch.Tensor, lam: float | torch.Tensor,
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows of ``a`` and ``b`` plus ``lam`` as float64 ``[B]``: a 1-D ``lam`` means one row per entry."""
    batched = _is_batched(lam)
    a_rows, b_rows = _rows(a, b, batched)
    lam_rows = torch.as_tensor(lam, dtype=torch.float64).to(a.device).reshape(-1)
    if lam_rows.shape[0] != a_rows.shape[0]:
        raise ValueError(f"lam of shape {tuple(lam_rows.shape)} needs a and b of shape [{lam_rows.shape[0]}, ...],"
                         f" got {tuple(a.shape)}")
    if not torch.isfinite(lam_rows).all():
        raise ValueError(f"lam must be finite, got {lam}")
    return a_rows, b_rows, lam_rows


def _angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle per row between float64 rows, ``2 atan2(|â - b̂|, |â + b̂|)``: accurate near 0 and pi too."""
    tiny = torch.finfo(torch.float64).tiny
    a_unit = a / a.norm(dim=1, keepdim=True).clamp_min(tiny)
    b_unit = b / b.norm(dim=1, keepdim=True).clamp_min(tiny)
    return 2 * torch.atan2((a_unit - b_unit).norm(dim=1), (a_unit + b_unit).norm(dim=1))


def _orthogonal_unit(a: torch.Tensor) -> torch.Tensor:
    """A fixed unit vector orthogonal to each row of ``a``: the basis vector least aligned with it, made orthogonal."""
    a_unit = a / a.norm(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
    basis = torch.zeros_like(a)
    basis.scatter_(1, a_unit.abs().argmin(dim=1, keepdim=True), 1.0)
    v = basis - (basis * a_unit).sum(dim=1, keepdim=True) * a_unit
    return v / v.norm(dim=1, keepdim=True)


def _eq5(a: torch.Tensor, b: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Eq. 5 on float64 rows, with the degenerate angles handled explicitly."""
    alpha = _angle(a, b)
    theta = lam * alpha
    same = alpha < _DEGENERATE_ANGLE
    opposite = (torch.pi - alpha) < _DEGENERATE_ANGLE
    regular = ~(same | opposite)
    sin_alpha = torch.where(regular, torch.sin(alpha), torch.ones_like(alpha))
    coef_a = torch.where(regular, torch.sin(alpha + theta) / sin_alpha, torch.where(same, 1 + lam, torch.cos(theta)))
    coef_b = torch.where(regular, torch.sin(theta) / sin_alpha, torch.where(same, lam, torch.zeros_like(lam)))
    z = coef_a[:, None] * a - coef_b[:, None] * b
    if opposite.any():
        # b = -k a spans no plane: rotate a away from a fixed orthogonal direction, as Eq. 5 rotates away from b.
        rows = opposite.nonzero().squeeze(1)
        tangent = _orthogonal_unit(a[rows]) * b[rows].norm(dim=1, keepdim=True)
        z[rows] = z[rows] - torch.sin(theta[rows])[:, None] * tangent
    return z


def _finish(z: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return z.reshape(like.shape).to(like.dtype)


def circle_interpolate(a: torch.Tensor, b: torch.Tensor, lam: float | torch.Tensor) -> torch.Tensor:
    """Circle interpolation, paper Eq. 5: ``lam = 0`` gives ``a``, ``lam = 2*pi/alpha - 1`` gives ``b``."""
    a_rows, b_rows, lam_rows = _prepare(a, b, lam)
    return _finish(_eq5(a_rows, b_rows, lam_rows), a)


def spherical_interpolate(a: torch.Tensor, b: torch.Tensor, lam: float | torch.Tensor) -> torch.Tensor:
    """Spherical interpolation (slerp), paper Eq. 6: the short arc, ``lam`` in [0, 1] runs from ``a`` to ``b``."""
    a_rows, b_rows, lam_rows = _prepare(a, b, lam)
    return _finish(_eq5(a_rows, b_rows, -lam_rows), a)


def spherical_extrapolate(a: torch.Tensor, b: torch.Tensor, lam: float | torch.Tensor) -> torch.Tensor:
    """Spherical extrapolation, paper Eq. 7: the long arc, ``lam`` in [0, 2*pi/alpha - 1] runs from ``a`` to ``b``."""
    return circle_interpolate(a, b, lam)


def linear_interpolate(a: torch.Tensor, b: torch.Tensor, lam: float | torch.Tensor) -> torch.Tensor:
    """Plain linear interpolation ``(1 - lam) a + lam b`` (the ablation's baseline; leaves the Gaussian shell)."""
    a_rows, b_rows, lam_rows = _prepare(a, b, lam)
    return _finish((1 - lam_rows)[:, None] * a_rows + lam_rows[:, None] * b_rows, a)


METHODS: dict[str, Callable[[torch.Tensor, torch.Tensor, float | torch.Tensor], torch.Tensor]] = dict(zip(
    INTERPOLATION_METHODS, (circle_interpolate, spherical_interpolate, spherical_extrapolate, linear_interpolate)))
"""The function of each name of :data:`~diffii_datasets.diffusion.config.INTERPOLATION_METHODS` (listed once there,
in this order: Eq. 5, Eq. 6, Eq. 7, linear)."""


def _check_method(interpolation: str) -> None:
    if interpolation not in METHODS:
        raise ValueError(f"interpolation must be one of {', '.join(map(repr, METHODS))}, got {interpolation!r}")


def interpolate(a: torch.Tensor, b: torch.Tensor, lam: float | torch.Tensor,
                interpolation: str = "circle") -> torch.Tensor:
    """Dispatch to the method named by ``interpolation`` (one of :data:`METHODS`)."""
    _check_method(interpolation)
    return METHODS[interpolation](a, b, lam)


def interpolation_angle(a: torch.Tensor, b: torch.Tensor, *, batched: bool = False) -> torch.Tensor:
    """The angle alpha between ``a`` and ``b`` in float64: a scalar, or shape ``[B]`` when ``batched``."""
    a_rows, b_rows = _rows(a, b, batched)
    alpha = _angle(a_rows, b_rows)
    return alpha if batched else alpha[0]


def lam_upper_bound(alpha: torch.Tensor, interpolation: str = "circle") -> torch.Tensor:
    """Upper end of ``lam``'s range per method: ``2*pi/alpha`` (circle), ``2*pi/alpha - 1`` (extrapolate), 1 otherwise.

    For identical directions (alpha ~ 0) the circle collapses to a point and the
    bound is 0, so a random draw returns ``a`` with ``lam = 0``.
    """
    _check_method(interpolation)
    alpha = torch.as_tensor(alpha, dtype=torch.float64)
    if interpolation in ("spherical", "linear"):
        return torch.ones_like(alpha)
    degenerate = alpha < _DEGENERATE_ANGLE
    bound = 2 * torch.pi / torch.where(degenerate, torch.ones_like(alpha), alpha)
    if interpolation == "extrapolate":
        bound = bound - 1
    return torch.where(degenerate, torch.zeros_like(alpha), bound)


def random_interpolate(a: torch.Tensor, b: torch.Tensor, *, interpolation: str = "circle",
                       generator: torch.Generator | None = None, batched: bool = False,
                       ) -> tuple[torch.Tensor, float | torch.Tensor]:
    """Draw ``lam ~ U[0, lam_upper_bound(alpha)]`` and interpolate; returns ``(z, lam)``.

    ``lam`` is a float, or a float64 tensor ``[B]`` when ``batched``. The uniform
    draw is made on ``generator``'s device (CPU when none is given).
    """
    _check_method(interpolation)
    alpha = interpolation_angle(a, b, batched=batched)
    device = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand(alpha.shape, generator=generator, dtype=torch.float64, device=device).to(alpha.device)
    lam = u * lam_upper_bound(alpha, interpolation)
    z = interpolate(a, b, lam, interpolation)
    return (z, lam) if batched else (z, float(lam))


def random_circle_interpolate(a: torch.Tensor, b: torch.Tensor, generator: torch.Generator | None = None, *,
                              batched: bool = False) -> tuple[torch.Tensor, float | torch.Tensor]:
    """Random circle interpolation (paper Sec. 3.2.2): ``lam ~ U[0, 2*pi/alpha]``, returns ``(z, lam)``."""
    return random_interpolate(a, b, interpolation="circle", generator=generator, batched=batched)
