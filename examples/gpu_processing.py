"""Example `batch_job` script (GPU queue): detect and embed the faces of every image under a prefix.

Uses the app's face engine directly (CUDA when the image has it, CPU otherwise) and writes to
$OUTPUT_DIR, which the script runner uploads to s3://$ML_OUTPUT_BUCKET/$OUTPUT_PREFIX:
  faces.csv       one row per face: image key, face number, box, detection score
  embeddings.npz  keys (image key + face number) and the float32 embeddings, row-aligned with faces.csv
  summary.json    counts, failures, timings and the providers the models actually ran on

It does not store sidecars or index vectors: that is what the `face_embedding` trigger is for.
Input: INPUT_PREFIX (default "images/") in ML_INPUT_BUCKET. Model: MODEL_ROOT, MODEL_PACK, ...
as for the app (gpu_app/config.py).
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from pathlib import Path

import boto3
import numpy as np
from botocore.exceptions import ClientError

from contract.media import IMAGE_SUFFIXES
from gpu_app.config import Settings
from gpu_app.engine import load_engine
from gpu_app.imaging import ImageDecodeError, decode_image

BATCH = 16  # images per model call: recognition runs once per batch of faces


def main() -> int:
    bucket = os.environ["ML_INPUT_BUCKET"]
    prefix = os.environ.get("INPUT_PREFIX", "images/")
    out = Path(os.environ.get("OUTPUT_DIR", "output"))
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    settings = Settings()
    engine = load_engine(settings)
    print(f"model {engine.info.model_pack}, providers {engine.info.applied_providers}", flush=True)

    s3 = boto3.client("s3")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    keys = sorted(
        item["Key"]
        for page in pages
        for item in page.get("Contents", [])
        if Path(item["Key"]).suffix.lower() in IMAGE_SUFFIXES
    )
    if not keys:
        print(f"no images under s3://{bucket}/{prefix}", file=sys.stderr)
        return 1

    failures: dict[str, str] = {}
    ids: list[str] = []
    vectors: list[np.ndarray] = []
    with (out / "faces.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_key", "face", "x1", "y1", "x2", "y2", "det_score"])
        for start in range(0, len(keys), BATCH):
            batch, images = [], []
            for key in keys[start : start + BATCH]:
                try:
                    data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                    images.append(decode_image(data, max_pixels=settings.max_image_pixels).bgr)
                    batch.append(key)
                except ImageDecodeError as exc:
                    failures[key] = exc.reason
                except ClientError as exc:
                    failures[key] = str(exc)
            for key, faces in zip(batch, engine.analyze(images) if images else [], strict=True):
                for number, face in enumerate(faces):
                    writer.writerow(
                        [key, number, *(round(v, 1) for v in face.bbox), round(face.det_score, 4)]
                    )
                    ids.append(f"{key}#{number}")
                    vectors.append(face.embedding)
            print(f"{min(start + BATCH, len(keys))}/{len(keys)} images, {len(ids)} faces", flush=True)

    dim = engine.info.embedding_dim
    matrix = np.stack(vectors) if vectors else np.zeros((0, dim), dtype=np.float32)
    np.savez_compressed(out / "embeddings.npz", ids=np.asarray(ids), embeddings=matrix)
    summary = {
        "input": f"s3://{bucket}/{prefix}",
        "images": len(keys),
        "failed": failures,
        "faces": len(ids),
        "seconds": round(time.monotonic() - started, 2),
        "model_pack": engine.info.model_pack,
        "providers": engine.info.applied_providers,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "failed"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
