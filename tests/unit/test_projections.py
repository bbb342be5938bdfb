"""The embedding projections kept in the model cache: read back exactly as built, rebuilt when missing or damaged."""

from __future__ import annotations

import numpy as np

from emulator.engine import embeddings

SOURCE = 8  # a small native size keeps each QR cheap; the cache does not depend on it


def test_the_cached_matrices_are_the_built_ones_and_later_starts_read_them(tmp_path, monkeypatch):
    built = {t: embeddings._build_projection(SOURCE, t) for t in embeddings.FAMILY_SIZES}
    monkeypatch.setattr(embeddings, "_PROJECTIONS", {})
    embeddings.warm_projections(SOURCE, tmp_path)
    files = sorted((tmp_path / "projections").glob("*.npy"))
    assert len(files) == len(embeddings.FAMILY_SIZES)
    assert not list((tmp_path / "projections").glob("*.tmp"))
    for target in embeddings.FAMILY_SIZES:
        assert np.array_equal(embeddings.projection(SOURCE, target), built[target])

    # A later start: nothing is built, every matrix comes from the files.
    monkeypatch.setattr(embeddings, "_PROJECTIONS", {})
    monkeypatch.setattr(embeddings, "_build_projection", lambda *_: (_ for _ in ()).throw(AssertionError("built")))
    embeddings.warm_projections(SOURCE, tmp_path)
    for target in embeddings.FAMILY_SIZES:
        assert np.array_equal(embeddings.projection(SOURCE, target), built[target])


def test_a_damaged_or_foreign_file_is_built_again(tmp_path, monkeypatch):
    monkeypatch.setattr(embeddings, "_PROJECTIONS", {})
    embeddings.warm_projections(SOURCE, tmp_path)
    damaged, wrong = sorted((tmp_path / "projections").glob("*.npy"))[:2]
    damaged.write_bytes(damaged.read_bytes()[:200])
    np.save(wrong, np.zeros((3, 3)))
    monkeypatch.setattr(embeddings, "_PROJECTIONS", {})
    embeddings.warm_projections(SOURCE, tmp_path)
    for target in embeddings.FAMILY_SIZES:
        assert np.array_equal(embeddings.projection(SOURCE, target), embeddings._build_projection(SOURCE, target))


def test_without_a_cache_dir_or_a_writable_one_they_are_built_in_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(embeddings, "_PROJECTIONS", {})
    embeddings.warm_projections(SOURCE)
    assert len(embeddings._PROJECTIONS) == len(embeddings.FAMILY_SIZES)
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setattr(embeddings, "_PROJECTIONS", {})
    embeddings.warm_projections(SOURCE, blocker)  # <file>/projections cannot be made: logged, served from memory
    assert len(embeddings._PROJECTIONS) == len(embeddings.FAMILY_SIZES)
