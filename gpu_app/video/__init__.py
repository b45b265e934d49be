"""Videos as searchable face tracks: decode and sample frames (`frames`), link the faces found in
them into tracks (`tracks`), and turn a video into a result document plus one index entry per track
(`pipeline`). The Batch entry point (`python -m gpu_app.batch video`) adds per-segment checkpoints."""
