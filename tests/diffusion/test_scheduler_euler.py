"""Flow-matching schedule (shift 3, applied twice like diffusers) and the Euler step."""

from __future__ import annotations

import numpy as np
import pytest

from liveavatar.engines.diffusion.runtime.scheduler import EulerSampler, sigmas, timesteps


@pytest.fixture(scope="module")
def diffusers_scheduler():
    """Upstream's scheduler: diffusers' FlowMatchEulerDiscreteScheduler (the test extra installs it)."""
    pytest.importorskip("torch")
    module = pytest.importorskip("diffusers.schedulers.scheduling_flow_match_euler_discrete")

    def make(steps: int, shift: float):
        scheduler = module.FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift)
        scheduler.set_timesteps(steps)
        return scheduler

    return make


@pytest.mark.parametrize("shift", [1.0, 3.0, 5.0])
@pytest.mark.parametrize("steps", range(1, 9))
def test_schedule_is_diffusers_bit_for_bit(diffusers_scheduler, steps, shift):
    ref = diffusers_scheduler(steps, shift)
    assert sigmas(steps, shift).tobytes() == ref.sigmas.numpy().astype(np.float32).tobytes()
    assert timesteps(steps, shift).tobytes() == ref.timesteps.numpy().astype(np.float32).tobytes()
    assert timesteps(steps, shift).dtype == np.float32


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("steps", [3, 4, 5])
def test_sampling_is_diffusers_bit_for_bit(diffusers_scheduler, steps, dtype):
    """A whole sampling run with a velocity that depends on x, as the model's does."""
    import torch

    ref, ours = diffusers_scheduler(steps, 3.0), EulerSampler(steps)
    gen = torch.Generator().manual_seed(steps)
    x_ref = torch.randn(4, 16, 3, 8, 8, generator=gen).to(getattr(torch, dtype))
    noise = torch.randn(x_ref.shape, generator=gen).to(x_ref.dtype)
    x = x_ref.clone()
    for i, t in enumerate(ref.timesteps):
        assert float(t) == float(ours.timesteps[i])
        x_ref = ref.step(torch.tanh(x_ref.float()).to(x_ref.dtype) - noise, t, x_ref).prev_sample
        x = ours.step(x, torch.tanh(x.float()).to(x.dtype) - noise, i)
        assert x.dtype == x_ref.dtype and torch.equal(x, x_ref), f"step {i}"


def test_euler_step_is_a_torch_free_import():
    import subprocess
    import sys

    code = "import sys, liveavatar.engines.diffusion.runtime.scheduler as s; s.EulerSampler(4); print('torch' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )


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


def test_step_outside_the_schedule_is_refused():
    torch = pytest.importorskip("torch")
    with pytest.raises(IndexError):
        EulerSampler(4).step(torch.zeros(2), torch.zeros(2), 4)
