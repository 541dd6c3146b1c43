"""`liveavatar doctor` on this CPU-only machine, and without torch."""

from __future__ import annotations

import importlib.util
import json

import pytest

from liveavatar.cli import main


def _report(capsys, *args) -> tuple[int, dict]:
    code = main(["doctor", "--json", *args])
    return code, json.loads(capsys.readouterr().out)


def test_doctor_on_a_cpu_machine_explains_the_cpu_path(capsys):
    code, report = _report(capsys, "--no_collective", "--num_gpus_dit", "2", "--fp8")
    checks = {c["name"]: c for c in report["checks"]}
    assert code == 0 and report["ok"]
    assert checks["gpus"]["status"] == "info" and "2 CPU processes over gloo" in checks["gpus"]["message"]
    assert "GiB" in checks["memory"]["message"] and checks["rendezvous port"]["message"]
    assert all(c["status"] != "fail" for c in report["checks"])


def test_doctor_flags_nccl_variables_and_a_busy_port(capsys, monkeypatch):
    import socket

    monkeypatch.setenv("NCCL_P2P_DISABLE", "1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        monkeypatch.setenv("MASTER_PORT", str(s.getsockname()[1]))
        _, report = _report(capsys, "--no_collective")
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["NCCL_P2P_DISABLE"]["status"] == "warn" and checks["NCCL_P2P_DISABLE"]["fix"]
    assert checks["rendezvous port"]["status"] == "warn" and "in use" in checks["rendezvous port"]["message"]


def test_doctor_refuses_more_workers_than_steps(capsys):
    code, report = _report(capsys, "--no_collective", "--num_gpus_dit", "5", "--sample_steps", "4")
    assert code == 1 and not report["ok"]
    assert any(c["status"] == "fail" and "5 DiT workers" in c["message"] for c in report["checks"])


def test_doctor_without_torch_says_so(capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    code = main(["doctor"])
    out = capsys.readouterr().out
    assert code == 1 and "torch is not installed" in out and "liveavatar[diffusion]" in out


@pytest.mark.slow
def test_doctor_two_worker_collective_over_gloo(capsys):
    code, report = _report(capsys)
    checks = {c["name"]: c for c in report["checks"]}
    assert code == 0 and checks["collective"]["status"] == "ok" and "gloo" in checks["collective"]["message"]


def test_doctor_compares_each_gpu_with_its_own_workers_plan():
    from liveavatar.doctor import Request, worker_memory_checks

    gib = 2**30
    five = Request(
        num_gpus_dit=4,
        sample_steps=4,
        size="704*384",
        infer_frames=48,
        fp8=False,
        ckpt_dir=None,
        enable_vae_parallel=True,
    )
    checks = worker_memory_checks(five, [(24 * gib, 24 * gib)] * 5)
    assert [c.name for c in checks] == [f"memory gpu{g}" for g in (1, 2, 3, 4, 0)]  # the decoding process keeps GPU 0
    assert all(c.status == "ok" for c in checks) and "worker 4 (decode)" in checks[-1].message
    # GPU 3 has less free (another job on it): only the worker planned there fails
    cards = [(24 * gib, 24 * gib)] * 5
    cards[3] = (12 * gib, 24 * gib)
    checks = {c.name: c for c in worker_memory_checks(five, cards)}
    assert checks["memory gpu3"].status == "fail" and "worker 2 (DiT step 2)" in checks["memory gpu3"].message
    assert checks["memory gpu3"].fix and all(c.status == "ok" for n, c in checks.items() if n != "memory gpu3")
    # no GPU: what each worker needs, the decode worker included
    (info,) = worker_memory_checks(five, [])
    assert info.status == "info" and info.message.count("GiB") == 5 and "worker 4 (decode)" in info.message
