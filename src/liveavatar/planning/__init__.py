"""Planning a run before any model loads: what is generated (plan.py) and how it fits the GPU (memory.py)."""

from liveavatar.planning.plan import make_plan

__all__ = ["make_plan"]
