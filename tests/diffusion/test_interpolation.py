"""Circle interpolation (paper Eq. 5) and its ablation variants: pure tensor math, no pipeline."""

import math

import pytest
import torch

from diffii_datasets.diffusion import interpolation as interp
from diffii_datasets.diffusion.interpolation import (
    circle_interpolate,
    interpolate,
    interpolation_angle,
    lam_upper_bound,
    linear_interpolate,
    random_circle_interpolate,
    random_interpolate,
    spherical_extrapolate,
    spherical_interpolate,
)


def _pair(shape=(4, 8, 8), seed=0, equal_norm=False):
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    if equal_norm:
        b = b / b.norm() * a.norm()
    return a, b


def _residual_outside_plane(z, a, b):
    """Norm of the part of z outside span(a, b), relative to |z| (least squares in float64)."""
    basis = torch.stack([a.flatten(), b.flatten()], dim=1).double()
    coef = torch.linalg.lstsq(basis, z.flatten().double()[:, None]).solution
    return ((basis @ coef).squeeze(1) - z.flatten().double()).norm() / z.double().norm()


def test_endpoints():
    a, b = _pair()
    alpha = float(interpolation_angle(a, b))
    assert 0 < alpha < math.pi
    torch.testing.assert_close(circle_interpolate(a, b, 0.0), a)
    torch.testing.assert_close(circle_interpolate(a, b, 2 * math.pi / alpha - 1), b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(circle_interpolate(a, b, 2 * math.pi / alpha), a, atol=1e-5, rtol=1e-5)
    # Eq. 6 and Eq. 7: the two arcs between the same endpoints.
    torch.testing.assert_close(spherical_interpolate(a, b, 0.0), a)
    torch.testing.assert_close(spherical_interpolate(a, b, 1.0), b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(spherical_extrapolate(a, b, 2 * math.pi / alpha - 1), b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(linear_interpolate(a, b, 0.5), (a + b) / 2)


def test_matches_equation_5_written_out():
    a, b = _pair(seed=3)
    a64, b64 = a.double(), b.double()
    alpha = torch.arccos((a64 * b64).sum() / (a64.norm() * b64.norm()))
    sin = torch.sin
    for lam in (0.3, 1.7, 2.9):
        expected = sin((1 + lam) * alpha) / sin(alpha) * a64 - sin(lam * alpha) / sin(alpha) * b64
        torch.testing.assert_close(circle_interpolate(a, b, lam), expected.float(), atol=1e-5, rtol=1e-5)
        expected6 = sin((1 - lam) * alpha) / sin(alpha) * a64 + sin(lam * alpha) / sin(alpha) * b64
        torch.testing.assert_close(spherical_interpolate(a, b, lam), expected6.float(), atol=1e-5, rtol=1e-5)


def test_circle_runs_the_long_arc_first_then_the_short_arc():
    """lam in [0, 2pi/alpha - 1] is extrapolation (away from b), the rest is the slerp arc back to a."""
    a, b = _pair(seed=5, equal_norm=True)
    alpha = float(interpolation_angle(a, b))
    # Just after the start, Z moves away from b; just after b, Z is on the short arc towards a.
    assert interpolation_angle(circle_interpolate(a, b, 0.05), b) > alpha
    end = 2 * math.pi / alpha - 1
    near = circle_interpolate(a, b, end + 0.5)
    torch.testing.assert_close(near, spherical_interpolate(a, b, 0.5), atol=1e-5, rtol=1e-5)


def test_norm_preserved_when_norms_are_equal():
    a, b = _pair(seed=1, equal_norm=True)
    alpha = float(interpolation_angle(a, b))
    for lam in torch.linspace(0, 2 * math.pi / alpha, 17).tolist():
        z = circle_interpolate(a, b, lam)
        assert z.norm().item() == pytest.approx(a.norm().item(), rel=1e-5)
    assert spherical_interpolate(a, b, 0.4).norm().item() == pytest.approx(a.norm().item(), rel=1e-5)
    # linear interpolation shrinks the norm: the reason the paper prefers the circle
    assert linear_interpolate(a, b, 0.5).norm() < 0.9 * a.norm()


@pytest.mark.parametrize("fn", [circle_interpolate, spherical_interpolate, spherical_extrapolate, linear_interpolate])
def test_result_lies_in_the_plane_of_a_and_b(fn):
    a, b = _pair(seed=2)
    for lam in (0.2, 0.9, 2.5):
        assert _residual_outside_plane(fn(a, b, lam), a, b) < 1e-5


@pytest.mark.parametrize("method", ["circle", "spherical", "extrapolate", "linear"])
def test_batch_equals_per_row(method):
    a, b = _pair(shape=(5, 4, 6, 6), seed=4)
    lam = torch.tensor([0.0, 0.3, 1.0, 2.2, 4.1])
    batched = interpolate(a, b, lam, method)
    assert batched.shape == a.shape and batched.dtype == a.dtype
    for i in range(5):
        torch.testing.assert_close(batched[i], interpolate(a[i], b[i], float(lam[i]), method), atol=1e-6, rtol=1e-6)
    # the angle is per row, not over the whole batch
    alpha = interpolation_angle(a, b, batched=True)
    assert alpha.shape == (5,)
    torch.testing.assert_close(alpha[2], interpolation_angle(a[2], b[2]))


def test_identical_and_opposite_latents_give_no_nan():
    a, _ = _pair(seed=6)
    assert float(interpolation_angle(a, a)) == pytest.approx(0.0, abs=1e-6)
    assert float(interpolation_angle(a, -a)) == pytest.approx(math.pi, abs=1e-6)
    for lam in (0.0, 0.5, 1.0, 3.0):
        for fn in (circle_interpolate, spherical_interpolate, spherical_extrapolate, linear_interpolate):
            assert torch.isfinite(fn(a, a, lam)).all()
            assert torch.isfinite(fn(a, -a, lam)).all()
    # identical: the circle collapses onto a
    torch.testing.assert_close(circle_interpolate(a, a, 2.0), a)
    torch.testing.assert_close(spherical_interpolate(a, a, 0.7), a)
    # opposite (alpha = pi): still a rotation of a that reaches b = -a at lam = 2pi/alpha - 1 = 1
    torch.testing.assert_close(circle_interpolate(a, -a, 1.0), -a, atol=1e-5, rtol=1e-5)
    quarter = circle_interpolate(a, -a, 0.5)
    assert quarter.norm().item() == pytest.approx(a.norm().item(), rel=1e-5)
    assert abs(float((quarter * a).sum())) < 1e-3 * a.norm().item() ** 2
    # a random draw between identical latents returns a itself with lam = 0
    z, lam = random_circle_interpolate(a, a.clone(), torch.Generator().manual_seed(0))
    assert lam == 0.0
    torch.testing.assert_close(z, a)
    # a batch that mixes regular and degenerate rows
    rows = torch.stack([a, a, -a])
    other = torch.stack([_pair(seed=7)[0], a, a])
    z = circle_interpolate(rows, other, torch.tensor([0.4, 0.4, 0.4]))
    assert torch.isfinite(z).all()


def test_near_degenerate_angles_are_continuous():
    """Just above the degenerate threshold the general formula agrees with the explicit limit."""
    a, b = _pair(seed=8)
    direction = (b - (b * a).sum() / (a * a).sum() * a)
    direction = direction / direction.norm() * a.norm()
    close = (a.double() + 1e-5 * direction.double())
    z_close = circle_interpolate(a.double(), close, 0.5)
    z_same = circle_interpolate(a.double(), a.double(), 0.5)
    torch.testing.assert_close(z_close, z_same, atol=1e-4, rtol=1e-4)


def test_random_circle_interpolate_draws_lam_over_the_whole_circle():
    a, b = _pair(seed=9)
    alpha = float(interpolation_angle(a, b))
    g = torch.Generator().manual_seed(123)
    lams = [random_circle_interpolate(a, b, g)[1] for _ in range(400)]
    assert min(lams) >= 0 and max(lams) <= 2 * math.pi / alpha
    # both arcs are visited: extrapolation [0, 2pi/alpha - 1] and interpolation beyond it
    assert any(lam < 2 * math.pi / alpha - 1 for lam in lams) and any(lam > 2 * math.pi / alpha - 1 for lam in lams)
    assert sum(lams) / len(lams) == pytest.approx(math.pi / alpha, rel=0.1)
    # the same generator seed gives the same draw; z matches the deterministic function
    z1, lam1 = random_circle_interpolate(a, b, torch.Generator().manual_seed(5))
    z2, lam2 = random_circle_interpolate(a, b, torch.Generator().manual_seed(5))
    assert lam1 == lam2
    torch.testing.assert_close(z1, z2)
    torch.testing.assert_close(z1, circle_interpolate(a, b, lam1))


def test_random_interpolate_ranges_and_batch():
    a, b = _pair(shape=(6, 4, 4, 4), seed=10)
    alpha = interpolation_angle(a, b, batched=True)
    for method, upper in [("circle", 2 * math.pi / alpha), ("extrapolate", 2 * math.pi / alpha - 1),
                          ("spherical", torch.ones(6)), ("linear", torch.ones(6))]:
        z, lam = random_interpolate(a, b, interpolation=method, generator=torch.Generator().manual_seed(0),
                                    batched=True)
        assert lam.shape == (6,)
        assert (lam >= 0).all() and (lam <= upper.double()).all()
        torch.testing.assert_close(lam_upper_bound(alpha, method), upper.double())
        torch.testing.assert_close(z, interpolate(a, b, lam, method))


def test_bad_input():
    a, b = _pair()
    with pytest.raises(ValueError, match="same shape"):
        circle_interpolate(a, b[:2], 0.1)
    with pytest.raises(TypeError, match="a and b must be torch tensors"):
        circle_interpolate(a.numpy(), b, 0.1)
    with pytest.raises(TypeError, match="floating point"):
        circle_interpolate(a.long(), b.long(), 0.1)
    with pytest.raises(ValueError, match="lam"):
        circle_interpolate(a, b, torch.zeros(3))  # batch of 3 for 4 rows
    with pytest.raises(ValueError, match="lam must be finite"):
        circle_interpolate(a, b, float("inf"))
    with pytest.raises(TypeError, match="lam"):
        circle_interpolate(a, b, "0.5")
    with pytest.raises(ValueError, match="interpolation must be one of"):
        interpolate(a, b, 0.5, "cubic")


def test_module_imports_only_torch_and_the_names_it_serves():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(interp))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    # the method names are declared once, with the knob that chooses among them (a pure-Python module)
    assert imported <= {"torch", "__future__", "collections.abc", "diffii_datasets.diffusion.config"}


def test_the_dispatch_table_serves_exactly_the_configs_methods():
    from diffii_datasets.diffusion.config import INTERPOLATION_METHODS

    assert tuple(interp.METHODS) == INTERPOLATION_METHODS
