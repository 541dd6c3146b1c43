"""Flow-matching schedule (shift 3, applied twice like diffusers) and the Euler step."""

from __future__ import annotations

import numpy as np
import pytest

from liveavatar.engines.diffusion.scheduler import EulerSampler, sigmas, timesteps


def test_timesteps_match_upstream():
    np.testing.assert_allclose(timesteps(4), [1000.0, 857.6923, 602.1506, 8.9286], atol=1e-3)
    np.testing.assert_allclose(timesteps(3), [1000.0, 751.12, 8.93], atol=1e-2)
    assert timesteps(4).dtype == np.float32
    for n in range(1, 9):
        s = sigmas(n)
        assert len(s) == n + 1 and s[0] == 1.0 and s[-1] == 0.0 and np.all(np.diff(s) < 0)
    assert EulerSampler(4).timesteps.tolist() == timesteps(4).tolist()


def test_euler_step_is_a_torch_free_import():
    import subprocess
    import sys

    code = "import sys, liveavatar.engines.diffusion.scheduler as s; s.EulerSampler(4); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


@pytest.mark.parametrize("steps", range(1, 9))
def test_straight_flow_is_integrated_exactly(steps):
    """x_sigma = (1 - sigma) x0 + sigma eps has the constant velocity eps - x0: Euler is exact."""
    torch = pytest.importorskip("torch")
    gen = torch.Generator().manual_seed(steps)
    x0, eps = torch.randn(2, 16, 3, 4, 4, generator=gen), torch.randn(2, 16, 3, 4, 4, generator=gen)
    sampler = EulerSampler(steps)
    x = eps.clone()
    for i in range(sampler.num_steps):
        sigma = float(sampler.sigmas[i])
        assert torch.allclose(x, (1 - sigma) * x0 + sigma * eps, atol=1e-5)
        x = sampler.step(x, eps - x0, i)
    torch.testing.assert_close(x, x0, atol=1e-5, rtol=1e-5)


def test_euler_converges_on_a_curved_field():
    """dx/dsigma = x has x(0) = x(1) / e; the error shrinks as steps grow."""
    torch = pytest.importorskip("torch")
    x1 = torch.tensor([1.0, -2.0, 0.5])
    errors = []
    for steps in (2, 4, 8):
        sampler = EulerSampler(steps, shift=1.0)
        x = x1.clone()
        for i in range(steps):
            x = sampler.step(x, x, i)
        errors.append((x - x1 / np.e).abs().max().item())
    assert errors[0] > errors[1] > errors[2]


def test_step_dtype_and_bounds():
    torch = pytest.importorskip("torch")
    sampler = EulerSampler(4)
    x = torch.randn(8, dtype=torch.bfloat16)
    v = torch.randn(8, dtype=torch.bfloat16)
    out = sampler.step(x, v, 0)
    assert out.dtype == torch.bfloat16
    dt = torch.tensor(sampler.sigmas[1] - sampler.sigmas[0], dtype=torch.float32)
    assert torch.equal(out, (x.float() + dt * v).to(torch.bfloat16))  # diffusers' arithmetic, bit for bit
    with pytest.raises(IndexError):
        sampler.step(x, v, 4)
