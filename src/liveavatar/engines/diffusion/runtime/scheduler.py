"""Flow-matching Euler sampling with a time shift, as the distilled Live Avatar model was trained.

The schedule matches diffusers' ``FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000,
shift=3)`` followed by ``set_timesteps(n)``, which applies the shift twice (once to the training
sigmas, once to the inference grid): 4 steps give [1000, 857.69, 602.15, 8.93].
"""

from __future__ import annotations

import numpy as np

NUM_TRAIN_TIMESTEPS = 1000


def shift_sigma(sigma: np.ndarray | float, shift: float) -> np.ndarray:
    sigma = np.asarray(sigma, dtype=np.float64)
    return shift * sigma / (1 + (shift - 1) * sigma)


def _training_sigma(t: int, shift: float) -> float:
    """The shifted sigma of training timestep ``t``, in float32 as diffusers builds its training table
    (the inference grid's end points come from it; in float64 they would differ by one ulp at some shifts)."""
    sigma = np.float32(t) / np.float32(NUM_TRAIN_TIMESTEPS)
    return float(np.float32(shift) * sigma / (np.float32(1) + np.float32(shift - 1) * sigma))


def sigmas(num_steps: int, shift: float = 3.0) -> np.ndarray:
    """Noise levels for ``num_steps`` Euler steps, plus the terminal 0: shape ``[num_steps + 1]``."""
    if num_steps < 1:
        raise ValueError("num_steps must be >= 1")
    sigma_max, sigma_min = _training_sigma(NUM_TRAIN_TIMESTEPS, shift), _training_sigma(1, shift)
    grid = np.linspace(sigma_max * NUM_TRAIN_TIMESTEPS, sigma_min * NUM_TRAIN_TIMESTEPS, num_steps)
    levels = shift_sigma(grid / NUM_TRAIN_TIMESTEPS, shift).astype(np.float32)
    return np.concatenate([levels, np.zeros(1, dtype=np.float32)])


def timesteps(num_steps: int, shift: float = 3.0) -> np.ndarray:
    """Timesteps fed to the model, ``1000 * sigma`` for each step (float32)."""
    return (sigmas(num_steps, shift)[:-1] * NUM_TRAIN_TIMESTEPS).astype(np.float32)


class EulerSampler:
    """Steps a latent from sigma_i to sigma_{i+1} along the model's flow velocity.

    ``x <- x + (sigma_{i+1} - sigma_i) * v``, accumulated in fp32 and cast back to ``v``'s dtype,
    with the same operands as diffusers' ``FlowMatchEulerDiscreteScheduler.step`` (upstream's
    scheduler): the step is a 0-dim fp32 CPU tensor, so ``dt * v`` follows PyTorch's rules for such
    scalars (in bf16 the step is rounded to bf16 first; a Python float would not be, and ~8% of the
    bf16 results would then differ by one unit). No torch import at module import time.
    """

    def __init__(self, num_steps: int, shift: float = 3.0) -> None:
        self.sigmas = sigmas(num_steps, shift)
        self.timesteps = (self.sigmas[:-1] * NUM_TRAIN_TIMESTEPS).astype(np.float32)

    @property
    def num_steps(self) -> int:
        return len(self.timesteps)

    def step(self, x, v, i: int):
        """The latent after step ``i`` (0-based) given the velocity ``v`` predicted at ``timesteps[i]``."""
        import torch  # x and v are torch tensors: torch is loaded already

        if not 0 <= i < self.num_steps:
            raise IndexError(f"step {i} is outside 0..{self.num_steps - 1}")
        dt = torch.tensor(np.float32(self.sigmas[i + 1]) - np.float32(self.sigmas[i]), dtype=torch.float32)
        return (x.float() + dt * v).to(v.dtype)
