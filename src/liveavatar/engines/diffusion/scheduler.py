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


def sigmas(num_steps: int, shift: float = 3.0) -> np.ndarray:
    """Noise levels for ``num_steps`` Euler steps, plus the terminal 0: shape ``[num_steps + 1]``."""
    if num_steps < 1:
        raise ValueError("num_steps must be >= 1")
    sigma_max = shift_sigma(1.0, shift)
    sigma_min = shift_sigma(1.0 / NUM_TRAIN_TIMESTEPS, shift)
    grid = np.linspace(sigma_max * NUM_TRAIN_TIMESTEPS, sigma_min * NUM_TRAIN_TIMESTEPS, num_steps)
    levels = shift_sigma(grid / NUM_TRAIN_TIMESTEPS, shift).astype(np.float32)
    return np.concatenate([levels, np.zeros(1, dtype=np.float32)])


def timesteps(num_steps: int, shift: float = 3.0) -> np.ndarray:
    """Timesteps fed to the model, ``1000 * sigma`` for each step (float32)."""
    return (sigmas(num_steps, shift)[:-1] * NUM_TRAIN_TIMESTEPS).astype(np.float32)


class EulerSampler:
    """Steps a latent from sigma_i to sigma_{i+1} along the model's flow velocity.

    ``x <- x + (sigma_{i+1} - sigma_i) * v``, accumulated in fp32 and cast back to ``v``'s dtype,
    like diffusers' ``FlowMatchEulerDiscreteScheduler.step``. As there, the product ``dt * v`` is
    formed in ``v``'s dtype (a 0-dim fp32 tensor does not promote a bf16 tensor), which keeps
    bf16 runs bit-comparable with upstream. Works on torch tensors; no torch import here.
    """

    def __init__(self, num_steps: int, shift: float = 3.0) -> None:
        self.sigmas = sigmas(num_steps, shift)
        self.timesteps = (self.sigmas[:-1] * NUM_TRAIN_TIMESTEPS).astype(np.float32)

    @property
    def num_steps(self) -> int:
        return len(self.timesteps)

    def step(self, x, v, i: int):
        """The latent after step ``i`` (0-based) given the velocity ``v`` predicted at ``timesteps[i]``."""
        if not 0 <= i < self.num_steps:
            raise IndexError(f"step {i} is outside 0..{self.num_steps - 1}")
        dt = float(np.float32(self.sigmas[i + 1]) - np.float32(self.sigmas[i]))
        return (x.float() + v * dt).to(v.dtype)
