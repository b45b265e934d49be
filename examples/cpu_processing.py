"""Example `batch_job` script (CPU queue): image statistics with Pillow and numpy.

For every image under INPUT_PREFIX (default "images/") in ML_INPUT_BUCKET, writes to $OUTPUT_DIR
(uploaded by the script runner to s3://$ML_OUTPUT_BUCKET/$OUTPUT_PREFIX):
  image_stats.csv  key, format, size, mean brightness, per-channel mean and contrast, sharpness
  summary.json     counts, unreadable images, averages
Sharpness is the variance of a Laplacian of the gray image: low values flag blurry photos.
Self-contained on purpose (boto3, Pillow, numpy only): a template to copy for any CPU job.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path

import boto3
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
FIELDS = [
    "key",
    "format",
    "width",
    "height",
    "brightness",
    "mean_r",
    "mean_g",
    "mean_b",
    "contrast",
    "sharpness",
]


def stats(data: bytes) -> dict[str, object]:
    image: Image.Image = Image.open(io.BytesIO(data))
    fmt = image.format
    image = ImageOps.exif_transpose(image).convert("RGB")
    rgb = np.asarray(image, dtype=np.float32)
    gray = rgb @ np.asarray([0.299, 0.587, 0.114], dtype=np.float32)
    laplacian = gray[1:-1, :-2] + gray[1:-1, 2:] + gray[:-2, 1:-1] + gray[2:, 1:-1] - 4 * gray[1:-1, 1:-1]
    means = rgb.reshape(-1, 3).mean(axis=0)
    return {
        "format": fmt,
        "width": image.width,
        "height": image.height,
        "brightness": round(float(gray.mean()), 2),
        "mean_r": round(float(means[0]), 2),
        "mean_g": round(float(means[1]), 2),
        "mean_b": round(float(means[2]), 2),
        "contrast": round(float(gray.std()), 2),
        "sharpness": round(float(laplacian.var()), 2) if laplacian.size else 0.0,
    }


def main() -> int:
    bucket = os.environ["ML_INPUT_BUCKET"]
    prefix = os.environ.get("INPUT_PREFIX", "images/")
    out = Path(os.environ.get("OUTPUT_DIR", "output"))
    out.mkdir(parents=True, exist_ok=True)

    s3 = boto3.client("s3")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    keys = sorted(
        item["Key"]
        for page in pages
        for item in page.get("Contents", [])
        if Path(item["Key"]).suffix.lower() in IMAGE_SUFFIXES
    )
    rows: list[dict[str, object]] = []
    failures: dict[str, str] = {}
    for key in keys:
        try:
            rows.append({"key": key, **stats(s3.get_object(Bucket=bucket, Key=key)["Body"].read())})
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            failures[key] = str(exc)
            print(f"skipped {key}: {exc}", file=sys.stderr, flush=True)

    with (out / "image_stats.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    summary = {
        "input": f"s3://{bucket}/{prefix}",
        "images": len(keys),
        "measured": len(rows),
        "failed": failures,
        "mean_brightness": round(float(np.mean([r["brightness"] for r in rows])), 2) if rows else None,
        "mean_sharpness": round(float(np.mean([r["sharpness"] for r in rows])), 2) if rows else None,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"measured {len(rows)} of {len(keys)} images under s3://{bucket}/{prefix}", flush=True)
    return 0 if keys else 1


if __name__ == "__main__":
    sys.exit(main())
