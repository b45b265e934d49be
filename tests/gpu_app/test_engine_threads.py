"""onnxruntime's intra-op threads yield when idle (issue 18 item 1).

Decoding overlaps inference on the same cores; threads that spin-wait between ops took those cores
from the decoders, and the pipeline ran at 0.61x the throughput it had before decoding overlapped
inference (BENCHMARKS.md, `--ref`). Checked on the sessions' options, never by a timing.
"""

from __future__ import annotations

from gpu_app.engine.insightface_engine import InsightFaceEngine


def test_model_sessions_do_not_spin(engine: InsightFaceEngine) -> None:
    for session in (engine._detector.session, engine._recognizer.session):
        options = session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
