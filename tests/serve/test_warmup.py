import sys

from liveavatar.serve.warmup import MODULES, warm_up


def test_warm_up_loads_what_a_job_would_load_on_first_use():
    assert warm_up() == []  # every name exists (a renamed module would otherwise slip by silently)
    assert all(name in sys.modules for name in MODULES) and "mediapipe" in sys.modules
