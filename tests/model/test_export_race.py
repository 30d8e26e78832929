"""Two exports of one name at once: each lands as its own version, no staging is left."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from mimical.model import export
from mimical.model.export import EXTRA_DIR, export_generator


class Generator:
    """Stands in for a ReplyGenerator: `tf.saved_model.save` is replaced below."""

    reply = None


def test_concurrent_exports_of_one_name_land_as_distinct_versions(tmp_path, monkeypatch):
    import tensorflow as tf

    both_staged = threading.Barrier(2, timeout=30)

    def save(generator, directory, signatures):
        # Both writers are half-way at once, and both then see no version yet: with one
        # fixed staging name the second would have deleted the first's directory.
        with open(f"{directory}/saved_model.pb", "w") as out:
            out.write(threading.current_thread().name)
        both_staged.wait()

    monkeypatch.setattr(tf.saved_model, "save", save)
    with ThreadPoolExecutor(2) as pool:
        runs = [
            pool.submit(export_generator, Generator(), tmp_path / "base", "alice", {"n.json": n})
            for n in (1, 2)
        ]
        exported = [run.result() for run in runs]
    model_dir = tmp_path / "base" / "alice"
    assert sorted(exported) == [model_dir / "1", model_dir / "2"]
    assert export.versions(model_dir) == [1, 2]
    assert sorted((d / EXTRA_DIR / "n.json").read_text() for d in exported) == ["1", "2"]
    assert len({(d / "saved_model.pb").read_text() for d in exported}) == 2
    assert [p.name for p in model_dir.iterdir() if p.name.startswith(".")] == []
