"""Face embedding service: InsightFace detection + recognition behind FastAPI, with pluggable
image storage (local directory or S3) and vector index (embedded SQLite+FAISS or Elasticsearch)."""

__version__ = "0.1.0"
