"""Item 5: the embedded vector index (SQLite + FAISS) up to 1M faces: insert, kNN, recall, reopen.

Synthetic faces: people with 8 faces each (cosine ~0.8 to the person, ~0.64 between two faces of
one person; different people ~0), person directions on a 64-d subspace of the embedding space,
like real embeddings whose variation spans far fewer directions than their dimensions. Queries
are new faces of stored people. Sizes 100k and 1M (quick: 30k), 512-d (and the pack's dimension
at 100k). Baselines, interleaved with the candidate:
- insert: a bare FAISS add_with_ids of the same batches into the kind of index the embedded one
  holds at that size (a flat index, or an IVF with the same lists, trained before the clock);
- query: numpy exact search (matrix-vector product + argpartition) on the same vectors, timed on
  EXACT_TIMED queries of each block; recall is against the exact top-k of every query, computed
  once before the timed loop (untimed), so the index arms run all their queries.
Query modes: unfiltered; as FaceService issues it (a model_pack filter, always true); and a
collection filter (10% of the people), each against exact search over the same candidates.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.core import (
    BUILD,
    HEADINGS,
    Options,
    Ratio,
    SectionResult,
    Table,
    fmt,
    log,
    model_pack,
    ms,
    per_round,
    percentile,
)

PACK = "bench-pack"
INSERT_BATCH = 1000  # a bulk load (reindex, batch job); one upload request brings ~100
QUERIES = 200
QUERY_ROUNDS = 5
QUERY_BLOCK = 10  # queries per arm before the next arm takes its turn
EXACT_TIMED = 2  # numpy exact arms time only this many queries per block (~0.45 s each at 1M)
TRUTH_CHUNK = 100_000  # database rows per matrix product of the untimed ground truth
K = 10
FACES_PER_PERSON = 8
SUBSPACE = 64
MATCH_THRESHOLD = 0.5  # the service's default for 512-d packs (gpu_app.config)
COLLECTION = "tenth"  # every 10th person's faces


def people_and_faces(rng: np.random.Generator, count: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    basis = np.linalg.qr(rng.standard_normal((dim, SUBSPACE)))[0].astype(np.float32)
    people = rng.standard_normal((count // FACES_PER_PERSON + 1, SUBSPACE), dtype=np.float32) @ basis.T
    people /= np.linalg.norm(people, axis=1, keepdims=True)
    faces = np.empty((count, dim), dtype=np.float32)
    for start in range(0, count, 100_000):  # in slices: bounded temporaries at 1M
        stop = min(count, start + 100_000)
        faces[start:stop] = new_faces(rng, people[np.arange(start, stop) // FACES_PER_PERSON])
    return people, faces


def new_faces(rng: np.random.Generator, people: np.ndarray) -> np.ndarray:
    noisy = people + rng.standard_normal(people.shape, dtype=np.float32) * (0.75 / np.sqrt(people.shape[1]))
    return noisy / np.linalg.norm(noisy, axis=1, keepdims=True)


def collection_of(row: int) -> str:
    return COLLECTION if (row // FACES_PER_PERSON) % 10 == 0 else "default"


def records(vectors: np.ndarray, start: int) -> list[Any]:
    from gpu_app.index.base import FaceRecord

    return [
        FaceRecord(
            face_id=f"f{start + i:07d}",
            image_id=f"img{(start + i) // 8:06d}",
            storage_key=f"upload_with_embed/bench/{(start + i) // 8:06d}.jpg",
            model_pack=PACK,
            det_score=0.9,
            bbox=(10.0, 20.0, 110.0, 140.0),
            embedding=vector,
            collection=collection_of(start + i),
            created_at="2026-01-01T00:00:00.000Z",
        )
        for i, vector in enumerate(vectors)
    ]


def exact_top(database: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    """Row numbers of the k highest inner products, best first (the timed numpy baseline). On one
    thread, as the index searches: einsum, not `@`, whose BLAS threads spin on after each call and
    took the second core from the index arm that followed (1M index wall p95 11.4 ms after `@`, 3.9
    after einsum, in one run at load ~3; the scan is memory-bound, so einsum is as fast: ~100 ms)."""
    scores = np.einsum("ij,j->i", database, query)
    top = np.argpartition(-scores, k)[:k]
    return top[np.argsort(-scores[top])]


def exact_top_all(database: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """exact_top of every query (one row each) in a matrix product per chunk of the database: the
    ground truth for recall, untimed, so the timed loop runs every query instead of ~450 ms of exact
    search beside each one at 1M."""
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(queries), k), dtype=np.int64)
    for start in range(0, len(database), TRUTH_CHUNK):
        scores = queries @ database[start : start + TRUTH_CHUNK].T
        top = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
        merged_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, axis=1)], axis=1)
        merged_rows = np.concatenate([best_rows, top + start], axis=1)
        order = np.argsort(-merged_scores, axis=1, kind="stable")[:, :k]
        best_scores = np.take_along_axis(merged_scores, order, axis=1)
        best_rows = np.take_along_axis(merged_rows, order, axis=1)
    return best_rows


def bare_index(database: np.ndarray, size: int, dim: int) -> Any:
    """What FAISS alone needs for this many vectors, like the embedded index holds it (trained here)."""
    import faiss

    from gpu_app.index.embedded import EXACT_LIMIT, _nlist_for, new_approximate_index

    if size <= EXACT_LIMIT:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    nlist = _nlist_for(size)
    index = new_approximate_index(dim, nlist)
    sample = np.random.default_rng(1).choice(size, min(size, 40 * nlist), replace=False)
    index.train(database[np.sort(sample)])  # one thread, as the embedded index trains (see there)
    return index


def hits_to_rows(found: Any) -> set[int]:
    return {int(h.face_id[1:]) for h in found}


def measure(size: int, dim: int, seed: int, query_seconds: float) -> dict[str, Any]:
    from gpu_app.index import SearchFilters
    from gpu_app.index.embedded import EmbeddedIndex

    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    people, database = people_and_faces(rng, size, dim)
    result: dict[str, Any] = {"size": size, "dim": dim, "generate_s": time.perf_counter() - started}
    in_collection = np.flatnonzero((np.arange(size) // FACES_PER_PERSON) % 10 == 0)
    with tempfile.TemporaryDirectory(prefix="index-", dir=BUILD) as folder:
        index = EmbeddedIndex(Path(folder))
        index.open(dim, PACK)
        bare = bare_index(database, size, dim)
        # Insert: A B per batch; ten rounds (deciles of the batches) for the spread.
        insert_index = [0.0] * 10
        insert_faiss = [0.0] * 10
        batches = range(0, size, INSERT_BATCH)
        for number, start in enumerate(batches):
            vectors = database[start : start + INSERT_BATCH]
            batch = records(vectors, start)  # building records is the caller's cost, not timed
            ids = np.arange(start, start + len(vectors), dtype=np.int64)
            decile = number * 10 // len(batches)
            began = time.perf_counter()
            index.add(batch)
            insert_index[decile] += time.perf_counter() - began
            began = time.perf_counter()
            bare.add_with_ids(vectors, ids)
            insert_faiss[decile] += time.perf_counter() - began
        result["insert_index"] = insert_index
        result["insert_faiss"] = insert_faiss
        del bare
        log(f"index: {size} inserted in {sum(insert_index):.1f}s (bare FAISS {sum(insert_faiss):.1f}s)")

        # Reopen: close saves the FAISS file with its generation; open loads it (no retraining).
        began = time.perf_counter()
        index.close()
        result["close_s"] = time.perf_counter() - began
        result["faiss_bytes"] = (Path(folder) / "faces.faiss").stat().st_size
        halves = Path(folder) / "faces.bf16.npy"  # the bfloat16 copy the approximate index re-scores with
        result["halves_bytes"] = halves.stat().st_size if halves.exists() else 0
        result["sqlite_bytes"] = sum(
            p.stat().st_size for p in Path(folder).glob("faces.sqlite3*") if p.is_file()
        )
        began = time.perf_counter()
        index = EmbeddedIndex(Path(folder))
        index.open(dim, PACK)
        result["reopen_s"] = time.perf_counter() - began
        result["lists"] = int(getattr(index._faiss, "nlist", 0))
        result["probes"] = index.probes
        log(f"index: reopened in {result['reopen_s']:.1f}s")

        people_asked = rng.integers(0, len(people), QUERIES)
        people_asked[::2] -= people_asked[::2] % 10  # half of them in the filtered collection
        people_asked = np.minimum(people_asked, (size - 1) // FACES_PER_PERSON)
        queries = new_faces(rng, people[people_asked])
        # The collection's rows copied once, not per query (200 MB at 1M).
        collection_matrix = database[in_collection]
        exact_rows = exact_top_all(database, queries, K)
        truth = {
            "index": exact_rows,
            "index, service filter": exact_rows,  # the filter every row passes
            "index, collection filter": in_collection[exact_top_all(collection_matrix, queries, K)],
        }
        service_filter = SearchFilters(model_pack=PACK)
        collection_filter = SearchFilters(collection=COLLECTION)
        arms: dict[str, Callable[[np.ndarray], Any]] = {
            "numpy exact": lambda q: exact_top(database, q, K),
            "index": lambda q: index.search(q, K, -1.0, None),
            "index, service filter": lambda q: index.search(q, K, -1.0, service_filter),
            "numpy exact, collection": lambda q: in_collection[exact_top(collection_matrix, q, K)],
            "index, collection filter": lambda q: index.search(q, K, -1.0, collection_filter),
        }
        latencies: dict[str, list[float]] = {name: [] for name in arms}
        # Thread CPU time: without waits for a core, and without numpy's BLAS threads that spin on after
        # the exact arm (the process's CPU time would count them).
        cpu_times: dict[str, list[float]] = {name: [] for name in arms}
        recall: dict[str, list[float]] = {name: [] for name in arms if name.startswith("index")}
        recall_at_threshold: dict[str, list[float]] = {name: [] for name in recall}
        for arm in arms.values():  # warm-up: first search builds caches; not timed
            arm(queries[0])
        # Blocks of QUERY_BLOCK queries, arm by arm (A A A.. B B B.., then the next block): a numpy scan
        # of the whole matrix evicts the caches, and the index should not pay for that in every query.
        deadline = time.monotonic() + query_seconds
        for first in range(0, len(queries), QUERY_BLOCK):
            if time.monotonic() > deadline:
                break
            block = queries[first : first + QUERY_BLOCK]
            found_by: dict[str, list[Any]] = {}
            for name, arm in arms.items():
                found_by[name] = []
                exact = name.startswith("numpy")
                # One untimed query on switching to an index arm: numpy's BLAS threads spin on the second
                # core for a while after the exact arm returns, and FAISS's OpenMP threads would wait for it.
                if not exact:
                    arm(block[0])
                # The exact arms are timed on a few queries only: their ratio's baseline, not the truth.
                for query in block[:EXACT_TIMED] if exact else block:
                    began, cpu = time.perf_counter(), time.thread_time()
                    found_by[name].append(arm(query))
                    latencies[name].append(time.perf_counter() - began)
                    cpu_times[name].append(time.thread_time() - cpu)
            for name in recall:
                expected_rows = truth[name][first : first + len(block)]
                for query, expected, found in zip(block, expected_rows, found_by[name], strict=True):
                    recall[name].append(len(set(expected.tolist()) & hits_to_rows(found)) / K)
                    # What the service returns: only hits at or above the match threshold.
                    above = {int(r) for r in expected if float(database[r] @ query) >= MATCH_THRESHOLD}
                    if above:
                        kept = hits_to_rows(h for h in found if h.similarity >= MATCH_THRESHOLD)
                        recall_at_threshold[name].append(len(above & kept) / len(above))
        index.close()
    result["latencies"] = latencies
    result["cpu_times"] = cpu_times
    result["recall"] = {name: float(np.mean(values)) for name, values in recall.items()}
    result["recall_at_threshold"] = {
        name: float(np.mean(values)) if values else float("nan")
        for name, values in recall_at_threshold.items()
    }
    return result


def run(opts: Options) -> list[SectionResult]:
    _, pack = model_pack()
    pack_dim = 256 if pack == "offline_sc" else 512  # buffalo_* packs are 512-d
    configs = opts.pick(
        [(100_000, 512), *([(100_000, pack_dim)] if pack_dim != 512 else []), (1_000_000, 512)],
        [(30_000, 512)],
    )
    BUILD.mkdir(parents=True, exist_ok=True)
    results = []
    for size, dim in configs:
        log(f"index: {size} vectors x {dim} dims")
        results.append(measure(size, dim, seed=size + dim, query_seconds=opts.pick(60.0, 6.0)))
    largest = max(size for size, _ in configs)

    rows, state_rows, ratios = [], [], []
    numbers: dict[str, float] = {}
    for r in results:
        label = (
            f"{r['size'] // 1000}k x {r['dim']}"
            if r["size"] < 1_000_000
            else f"{r['size'] // 1_000_000}M x {r['dim']}"
        )
        insert_rate = r["size"] / sum(r["insert_index"])
        lat = r["latencies"]
        done = len(lat["index"])
        rows.append(
            [
                label,
                ms(percentile(lat["index"], 50), 2),
                ms(percentile(lat["index"], 95), 2),
                ms(percentile(r["cpu_times"]["index"], 95), 2),
                f"{r['recall']['index']:.3f}",
                f"{r['recall_at_threshold']['index']:.3f}",
                ms(percentile(lat["index, collection filter"], 95), 2),
                f"{r['recall']['index, collection filter']:.3f}",
                f"{r['recall_at_threshold']['index, collection filter']:.3f}",
                ms(percentile(lat["index, service filter"], 95), 2),
                ms(percentile(lat["numpy exact"], 50), 2),
                str(done),
            ]
        )
        state_rows.append(
            [
                label,
                f"{r['lists']} lists, {r['probes']} probed" if r["lists"] else "exact (flat)",
                fmt(insert_rate, 0),
                fmt(r["size"] / sum(r["insert_faiss"]), 0),
                fmt(r["close_s"], 1),
                fmt(r["reopen_s"], 2),
                fmt(r["faiss_bytes"] / r["size"], 0),
                fmt(r["halves_bytes"] / r["size"], 0),
                fmt(r["sqlite_bytes"] / r["size"], 0),
                fmt(r["generate_s"], 1),
            ]
        )
        headline = r["size"] == largest and r["dim"] == 512

        def p_rounds(name: str, q: float = 50, lat: dict[str, list[float]] = lat) -> list[float]:
            chunk = max(1, len(lat[name]) // QUERY_ROUNDS)  # the exact arms time fewer queries
            return [percentile(lat[name][i : i + chunk], q) for i in range(0, chunk * QUERY_ROUNDS, chunk)]

        ratios += [
            Ratio(
                f"index query p95 vs numpy exact ({label})",
                per_round(p_rounds("index", 95), p_rounds("numpy exact", 95)),
                "index search / brute-force numpy on the same vectors; > 1 means the index is slower",
                headline=headline,
            ),
            Ratio(
                f"index query with collection filter vs without ({label})",
                per_round(p_rounds("index, collection filter"), p_rounds("index")),
                "a collection of 10% of the faces / an unfiltered search (p50)",
                headline=headline,
            ),
            Ratio(
                f"index query with service filter vs without ({label})",
                per_round(p_rounds("index, service filter"), p_rounds("index")),
                "the model_pack filter FaceService always passes / an unfiltered search (p50)",
                headline=False,
            ),
            Ratio(
                f"index insert vs bare FAISS add ({label})",
                per_round(r["insert_index"], r["insert_faiss"]),
                "per decile of the batches: SQLite + FAISS upsert (and any retraining) / FAISS add alone",
                headline=headline,
            ),
        ]
        key = f"{r['size'] // 1000}k_{r['dim']}"
        numbers |= {
            f"insert_per_s_{key}": insert_rate,
            f"query_p50_ms_{key}": 1000 * percentile(lat["index"], 50),
            f"query_p95_ms_{key}": 1000 * percentile(lat["index"], 95),
            f"query_cpu_p95_ms_{key}": 1000 * percentile(r["cpu_times"]["index"], 95),
            f"recall10_{key}": r["recall"]["index"],
            f"recall10_threshold_{key}": r["recall_at_threshold"]["index"],
            f"reopen_s_{key}": r["reopen_s"],
            f"faiss_bytes_per_vector_{key}": r["faiss_bytes"] / r["size"],
            f"memory_bytes_per_vector_{key}": (r["faiss_bytes"] + r["halves_bytes"]) / r["size"],
        }
    return [
        SectionResult(
            key="index",
            heading=HEADINGS["index"],
            ratios=ratios,
            tables=[
                Table(
                    f"Embedded index queries, k={K}, up to {QUERIES} queries",
                    [
                        "vectors x dim",
                        "p50 ms",
                        "p95 ms",
                        "CPU p95 ms",
                        "recall@10",
                        f"recall@10 at {MATCH_THRESHOLD}",
                        "collection p95 ms",
                        "collection recall@10",
                        f"collection recall at {MATCH_THRESHOLD}",
                        "service filter p95 ms",
                        "numpy exact p50 ms",
                        "queries",
                    ],
                    rows,
                ),
                Table(
                    f"Embedded index build, reopen, memory (inserts in batches of {INSERT_BATCH})",
                    [
                        "vectors x dim",
                        "FAISS index",
                        "insert/s",
                        "bare FAISS add/s",
                        "close s",
                        "reopen s",
                        "FAISS bytes/vector",
                        "bfloat16 copy bytes/vector",
                        "SQLite bytes/vector",
                        "generate s",
                    ],
                    state_rows,
                ),
            ],
            notes=[
                f"Queries stop at {QUERIES} or after {opts.pick(60, 6)} s per configuration (column "
                "'queries'); FAISS searches on one thread, as in the app. CPU p95 = the query's "
                "thread_time (the search runs on the calling thread): its work without the time it "
                "waited for a core on a shared machine.",
                "recall@10 = |index top-10 ∩ numpy exact top-10| / 10, averaged over the queries. "
                f"'at {MATCH_THRESHOLD}': of the exact top-10 at or above the service's match threshold "
                "(what a search returns), the share the index returns; the rest of the exact top-10 are "
                "strangers at cosine ~0.2-0.35, near ties that an approximate index may swap.",
                "Above 20,000 vectors the index is IVF (about sqrt(n) lists, half of them scanned) over "
                "4-bit product-quantised codes scanned with FAISS's fast scan; its best 2,000 candidates are "
                "re-scored from a bfloat16 copy of the vectors in memory, and the best 4k of those from the "
                "float32 vectors in SQLite (returned scores are exact; which lists are scanned is the "
                "approximation); below 20,000, exact flat search.",
                "Insert: record checks, one executemany upsert per batch in one SQLite transaction (WAL, "
                "synchronous=NORMAL), the FAISS add and bfloat16 copy (on a second thread while SQLite "
                "writes), and the retraining each time the lists double (at 262k on the way to 1M; "
                "counted in its decile); the bare FAISS add has no durability and no retraining.",
                "Reopen = open() of the closed index: SQLite plus reading the saved FAISS and bfloat16 "
                "files; close writes them. Memory per vector: the FAISS file and the bfloat16 copy (their "
                "in-memory sizes; the copy's rows run to the highest row id), and SQLite on disk.",
                "Synthetic data (see the module docstring): recall on uniformly random vectors, which have "
                "no neighbours worth the name, would need most lists scanned.",
            ],
            numbers=numbers,
        )
    ]
