"""The sidecar's JSON: the values read back are the ones written, bit for bit, whichever encoder ran."""

from __future__ import annotations

import json
import math

import numpy as np

from gpu_app.sidecar import Sidecar, SidecarFace


def sidecar_of(embedding: tuple[float, ...], name: str = "photo.jpg") -> Sidecar:
    face = SidecarFace(
        face_id="a" * 32 + "-000",
        bbox=(10.25, 20.5, 110.125, 140.0),
        landmarks=((30.5, 40.25), (60.0, 40.5), (45.0, 60.0), (35.0, 80.0), (58.0, 80.0)),
        det_score=0.87109375,
        embedding=embedding,
    )
    return Sidecar(
        image_id="a" * 32,
        storage_key="uploads/aa/photo.jpg",
        original_name=name,
        model_pack="offline_sc",
        embedding_dim=len(embedding),
        width=640,
        height=480,
        format="JPEG",
        collection="default",
        created_at="2026-11-30T05:00:00.000Z",
        faces=(face,),
    )


def float32_embedding() -> tuple[float, ...]:
    vector = np.random.default_rng(7).standard_normal(512).astype(np.float32)
    vector[:4] = [1e-7, -3.5e-6, 0.0, -0.0]  # exponent forms and signed zero
    return tuple((vector / np.linalg.norm(vector)).tolist())


def test_embeddings_read_back_bit_identical_and_as_the_standard_library_reads_them() -> None:
    sidecar = sidecar_of(float32_embedding())
    document = sidecar.to_json()
    back = Sidecar.from_json(document)
    assert back == sidecar
    assert json.loads(document) == json.loads(json.dumps(json.loads(document)))
    rebuilt = back.records()[0].embedding
    assert rebuilt.dtype == np.float32
    assert rebuilt.tobytes() == np.asarray(sidecar.faces[0].embedding, dtype=np.float32).tobytes()


def test_a_non_finite_number_is_kept_not_written_as_null() -> None:
    embedding = (math.nan, math.inf, *float32_embedding()[2:])
    back = Sidecar.from_json(sidecar_of(embedding).to_json())
    assert math.isnan(back.faces[0].embedding[0])
    assert back.faces[0].embedding[1] == math.inf


def test_a_name_with_a_lone_surrogate_is_still_written() -> None:
    name = "caf\udce9.jpg"  # undecodable bytes of a file name, as os.fsdecode gives them
    back = Sidecar.from_json(sidecar_of(float32_embedding(), name).to_json())
    assert back.original_name == name
