"""Fetch a model pack from S3 (the models bucket) when it is not on disk yet."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlparse

log = logging.getLogger(__name__)


def ensure_model_pack(root: Path, pack: str, s3_uri: str | None, region: str | None = None) -> None:
    """With MODELS_S3_URI=s3://bucket/prefix, copy <prefix>/models/<pack>/*.onnx into <root>/models/<pack>.

    Without it, nothing happens here and insightface downloads its own packs as usual.
    """
    target = root / "models" / pack
    if not s3_uri or any(target.glob("*.onnx")):
        return
    parsed = urlparse(s3_uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"MODELS_S3_URI must look like s3://bucket/prefix, got {s3_uri!r}")
    import boto3

    prefix = "/".join(p for p in (parsed.path.strip("/"), "models", pack) if p) + "/"
    s3 = boto3.client("s3", region_name=region)
    target.mkdir(parents=True, exist_ok=True)
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=parsed.netloc, Prefix=prefix):
        for item in page.get("Contents", []):
            name = item["Key"][len(prefix) :]
            if "/" in name or not name.endswith(".onnx"):
                continue  # only the pack's own models; insightface loads every *.onnx it finds
            partial = target / f".{name}.part"
            s3.download_file(parsed.netloc, item["Key"], str(partial))
            partial.replace(target / name)
            count += 1
    if count == 0:
        raise FileNotFoundError(f"no *.onnx under s3://{parsed.netloc}/{prefix}")
    log.info("synced %d model file(s) of pack %s from s3://%s/%s", count, pack, parsed.netloc, prefix)
