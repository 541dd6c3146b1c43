import pytest

from liveavatar.engines.diffusion.dit_config import DiTConfig
from liveavatar.engines.diffusion.runtime.loop import SINK_TOKENS_PER_FRAME
from liveavatar.engines.diffusion.memory import GIB, WORKING_MARGIN, cache_budget, require_room
from liveavatar.errors import UserError

C14 = DiTConfig.wan_s2v_14b()


def budget_704x384(steps: int):
    return cache_budget(C14.num_layers, C14.dim, (48, 88), 12, steps, SINK_TOKENS_PER_FRAME, 2)


def test_14b_cache_sizes_match_upstream():
    b = budget_704x384(4)
    # upstream-facts §4.3: 12672 tokens x 40 layers x K,V x 5120 x bf16 = 10.4 GB = 9.7 GiB per step
    assert b.ring_bytes_per_step == 12672 * 40 * 2 * 5120 * 2
    assert b.ring_bytes_per_step / GIB == pytest.approx(9.67, abs=0.01)
    assert b.sink_bytes == 2640 * 40 * 2 * 5120 * 2


def test_room_check_passes_and_refuses_with_the_ways_out():
    b = budget_704x384(5)
    require_room(b, b.total + WORKING_MARGIN, (384, 704), 48)
    with pytest.raises(UserError) as err:
        require_room(b, 45 * GIB, (384, 704), 48)
    line = err.value.one_line()
    assert "5 steps at 704x384" in line and "--fp8" in line and "45.0 GiB are free" in line
