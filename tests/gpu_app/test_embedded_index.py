"""The embedded index beyond the shared contract: its FAISS cache is always rebuilt from SQLite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from gpu_app.index import FaceRecord, SearchFilters
from gpu_app.index.embedded import EmbeddedIndex

DIM = 32


def records(n: int, seed: int = 0, image: str = "img") -> list[FaceRecord]:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [
        FaceRecord(
            face_id=f"{image}-{seed}-{i}",
            image_id=f"{image}{i % 3}",
            storage_key=f"k/{i}.jpg",
            model_pack="pack",
            det_score=0.9,
            bbox=(0.0, 0.0, 1.0, 1.0),
            embedding=vectors[i],
        )
        for i in range(n)
    ]


def opened(path: Path) -> EmbeddedIndex:
    index = EmbeddedIndex(path)
    index.open(DIM, "pack")
    return index


def top(index: EmbeddedIndex, vector: np.ndarray) -> list[str]:
    return [h.face_id for h in index.search(vector, 5, -1.0)]


def test_cache_saved_on_close_and_reused(tmp_path: Path) -> None:
    index = opened(tmp_path)
    data = records(50)
    index.add(data)
    expected = top(index, data[7].embedding)
    index.close()
    assert (tmp_path / "faces.faiss").is_file()
    again = opened(tmp_path)
    assert top(again, data[7].embedding) == expected
    assert again.count() == 50


def test_missing_or_stale_cache_is_rebuilt_from_sqlite(tmp_path: Path) -> None:
    index = opened(tmp_path)
    data = records(40)
    index.add(data[:20])
    index.close()  # cache saved at this generation
    index = opened(tmp_path)
    index.add(data[20:])
    index._db.close()
    index._db = None
    stale = opened(tmp_path)
    assert stale.count() == 40
    assert top(stale, data[30].embedding)[0] == data[30].face_id
    stale.close()
    (tmp_path / "faces.faiss").unlink()
    rebuilt = opened(tmp_path)
    assert top(rebuilt, data[30].embedding)[0] == data[30].face_id


def test_corrupt_cache_file_is_rebuilt(tmp_path: Path) -> None:
    index = opened(tmp_path)
    data = records(10)
    index.add(data)
    index.close()
    (tmp_path / "faces.faiss").write_bytes(b"garbage")
    assert top(opened(tmp_path), data[3].embedding)[0] == data[3].face_id


def test_writes_of_another_process_are_seen(tmp_path: Path) -> None:
    index = opened(tmp_path)
    index.add(records(5))
    assert index.count() == 5
    script = (
        "import sys; sys.path.insert(0, '.');"
        "from pathlib import Path;"
        "from tests.gpu_app.test_embedded_index import opened, records;"
        f"i = opened(Path({str(tmp_path)!r})); i.add(records(7, seed=9, image='other')); i.close()"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=Path(__file__).resolve().parents[2])
    other = records(7, seed=9, image="other")
    assert index.count() == 12
    assert top(index, other[2].embedding)[0] == other[2].face_id


def test_upsert_and_delete_keep_cache_and_records_in_step(tmp_path: Path) -> None:
    index = opened(tmp_path)
    data = records(9)
    index.add(data)
    index.add(data[:3])  # same face ids again: replaced, not duplicated
    assert index.count() == 9
    assert index.delete_image("img0") == 3
    assert index.count() == 6
    assert all(h.image_id != "img0" for h in index.search(data[0].embedding, 9, -1.0))
    assert index.count(SearchFilters(image_id="img1")) == 3
    assert [len(batch) for batch in index.iter_records(batch_size=4)] == [4, 2]
