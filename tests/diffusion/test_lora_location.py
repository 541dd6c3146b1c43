"""--lora_path_dmd finds liveavatar.safetensors flat or inside a Hugging Face hub cache."""

from __future__ import annotations

import os
from pathlib import Path

from liveavatar.engines.diffusion.loading.layout import LORA_FILENAME, LORA_HUB_REPO, resolve_layout


def _snapshot(cache: Path, name: str, mtime: float) -> Path:
    """One snapshot as the hub writes it: the file is a link into blobs/."""
    repo = cache / LORA_HUB_REPO
    blob = repo / "blobs" / f"blob-{name}"
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(name.encode())
    snap = repo / "snapshots" / name
    snap.mkdir(parents=True)
    (snap / LORA_FILENAME).symlink_to(os.path.relpath(blob, snap))
    os.utime(blob, (mtime, mtime))
    return snap / LORA_FILENAME


def test_flat_folder_wins(tmp_path):
    (tmp_path / LORA_FILENAME).write_bytes(b"x")
    _snapshot(tmp_path, "abc", 1.0)
    layout = resolve_layout(tmp_path, tmp_path)
    assert layout.lora == tmp_path / LORA_FILENAME and layout.lora_note == ""


def test_one_snapshot_under_the_cache_root_or_the_repo_folder(tmp_path):
    found = _snapshot(tmp_path, "0123abcd", 1.0)
    for folder in (tmp_path, tmp_path / LORA_HUB_REPO):
        layout = resolve_layout(tmp_path, folder)
        assert layout.lora == found and layout.lora.read_bytes() == b"0123abcd"
        assert layout.lora_note == "" and "LoRA" not in " ".join(layout.missing())


def test_several_snapshots_refs_main_then_newest(tmp_path):
    old = _snapshot(tmp_path, "old1", 1_000.0)
    new = _snapshot(tmp_path, "new2", 2_000.0)
    layout = resolve_layout(tmp_path, tmp_path)
    assert layout.lora == new and "2 snapshots" in layout.lora_note and "new2 (the newest)" in layout.lora_note
    refs = tmp_path / LORA_HUB_REPO / "refs"
    refs.mkdir()
    (refs / "main").write_text("old1\n")
    layout = resolve_layout(tmp_path, tmp_path)
    assert layout.lora == old and "old1 (the one refs/main names)" in layout.lora_note
    assert layout.lora_note.startswith("note: ")


def test_an_empty_cache_is_reported_missing_under_the_flat_name(tmp_path):
    (tmp_path / LORA_HUB_REPO / "snapshots" / "abc").mkdir(parents=True)
    layout = resolve_layout(tmp_path, tmp_path)
    assert layout.lora == tmp_path / LORA_FILENAME
    assert any("LoRA" in gap for gap in layout.missing())
