"""The embedded vector index: SQLite (standard library) is the durable record, FAISS the search cache.

The FAISS file is only a cache: it is rebuilt from SQLite whenever it is missing or its generation
differs from the database's (a crash before it was saved, or another process that wrote since).

Up to `exact_limit` vectors the cache is an exact flat index. Above it, three stages, each
cheaper per vector than the next and narrowing the candidates for it:
1. an inverted-file index (IVF, k-means lists trained on a sample) of 4-bit product-quantised
   codes (dim/16 bytes a vector, scanned with FAISS's SIMD "fast scan"): half of the lists nearest
   the query are scanned and its CANDIDATES best kept. Which lists are scanned is the approximation
   that bounds recall; the codes' coarse scores only need to keep the true neighbours among 2,000.
2. a bfloat16 copy of every vector (the high 16 bits of each float32, rounded; a numpy matrix by
   row id, saved beside the FAISS file) re-scores those candidates; the best RERANK*k go on.
   bfloat16, not float16: numpy widens it with an integer shift, ~3x faster than its float16 casts,
   which convert one element at a time (0.5 vs 1.7 ms for 2,000 candidates at 512-d); a score is
   off by ~3e-4 at most, far below the gaps this stage decides.
3. the float32 vectors stored in SQLite score those exactly, so every returned similarity is exact.
It is retrained each time the number of lists doubles (the collection grew 4x; the first IVF index
is sized for 4x its vectors, so the first retrain comes at 16x), from the bfloat16 copy while it is
current, otherwise from SQLite.
A collection filter is a per-collection bitmap kept up to date by writes, not an id list per query.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from gpu_app.index.base import (
    FaceRecord,
    IndexHealth,
    IndexMismatchError,
    IndexUnavailableError,
    SearchFilters,
    SearchHit,
    VectorIndexError,
    check_record,
)

LOCK_FILE = "faces.lock"
EXACT_LIMIT = 20_000  # flat exact search answers within a few ms up to here (512-d, one core)
PROBE_SHARE = 0.5  # IVF lists scanned per query: recall@10 vs latency, see BENCHMARKS.md section 5
CANDIDATES = 2000  # approximate search: fast-scan candidates re-scored from the bfloat16 copies (recall@10
# at 1M: 0.982 with 1,000, 0.989 with 2,000, for ~1 ms more per query)
RERANK = 4  # approximate search: results per k re-scored exactly from the float32 vectors in SQLite
SQL_CHUNK = 10_000  # host parameters per IN (...) list, well under SQLite's 32,766
SLICE_ROWS = 8192  # vectors per numpy step of a bulk conversion: temporaries of 16 MB at 512-d stay
# cheap, where whole-matrix ones (GBs at 1M) cost more in page faults than in arithmetic
INDEX_FILES = (
    "faces.sqlite3",
    "faces.sqlite3-wal",
    "faces.sqlite3-shm",
    "faces.faiss",
    "faces.bf16.npy",
    "faces.f16.npy",  # the float16 copy of earlier versions: read once, then replaced by faces.bf16.npy
    "faces.json",
)


class IndexInUseError(VectorIndexError):
    """Another process (the running app, or a CLI command) has the index open."""


def _lock(directory: Path, mode: int) -> int:
    """An flock on the folder's lock file, or IndexInUseError if a conflicting one is held."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise IndexInUseError(
            f"the embedded index at {directory} is open in another process (the app is running, or a "
            "`python -m gpu_app index|search|reindex`); stop it first"
        ) from None
    return fd


def drop_index_files(directory: Path) -> None:
    """Delete the index files, refusing (IndexInUseError) while any process has the index open:
    deleting them under a running app would silently lose everything it indexes afterwards."""
    fd = _lock(directory, fcntl.LOCK_EX)
    try:
        for name in INDEX_FILES:
            (directory / name).unlink(missing_ok=True)
    finally:
        os.close(fd)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS faces (
    id          INTEGER PRIMARY KEY,
    face_id     TEXT NOT NULL UNIQUE,
    image_id    TEXT NOT NULL,
    storage_key TEXT NOT NULL,
    model_pack  TEXT NOT NULL,
    collection  TEXT NOT NULL,
    det_score   REAL NOT NULL,
    bbox        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    embedding   BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS faces_image ON faces (image_id);
CREATE INDEX IF NOT EXISTS faces_collection ON faces (collection);
"""
_COLUMNS = (
    "id, face_id, image_id, storage_key, model_pack, collection, det_score, bbox, created_at, embedding"
)


class EmbeddedIndex:
    backend = "embedded"

    def __init__(self, directory: Path, exact_limit: int = EXACT_LIMIT, probes: int | None = None) -> None:
        self.directory = directory
        self.exact_limit = exact_limit
        self._probes = probes  # None: PROBE_SHARE of the lists
        self._collection_bits: dict[str, np.ndarray] = {}  # collection -> bitmap over row ids
        self._db_path = directory / "faces.sqlite3"
        self._faiss_path = directory / "faces.faiss"
        self._halves_path = directory / "faces.bf16.npy"
        self._float16_path = directory / "faces.f16.npy"  # written by earlier versions
        # bfloat16 bits (uint16) of each vector by row id (approximate only), see the module docstring
        self._halves: np.ndarray | None = None
        self._rescore_buffers: tuple[np.ndarray, np.ndarray] | None = None  # reused: see _rescore
        self._writer: ThreadPoolExecutor | None = None  # updates the cache while SQLite writes
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self._lock_fd: int | None = None  # shared flock held while open, see drop_index_files
        self._faiss: Any = None
        self._generation = -1  # generation of the database the FAISS cache reflects
        self.dim = 0
        self.model_pack = ""

    # --- lifecycle -------------------------------------------------------------------------
    def open(self, embedding_dim: int, model_pack: str) -> None:
        import faiss

        # One query at a time is a small matrix product: OpenMP threads only spin on a busy machine.
        faiss.omp_set_num_threads(1)
        with self._lock:
            if self._lock_fd is None:
                # Shared: any number of app and CLI processes may use the index together.
                self._lock_fd = _lock(self.directory, fcntl.LOCK_SH)
            db = sqlite3.connect(self._db_path, check_same_thread=False, isolation_level=None, timeout=30)
            # A 2 KB embedding row fills a 4 KB page alone; 16 KB pages hold 7 (a new database only).
            db.execute("PRAGMA page_size=16384")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            db.execute("BEGIN IMMEDIATE")
            try:
                stored = dict(db.execute("SELECT key, value FROM meta").fetchall())
                if not stored:
                    db.executemany(
                        "INSERT INTO meta (key, value) VALUES (?, ?)",
                        [("dim", str(embedding_dim)), ("model_pack", model_pack), ("generation", "0")],
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                db.close()
                self._unlock()
                raise
            if stored and (int(stored["dim"]) != embedding_dim or stored["model_pack"] != model_pack):
                db.close()
                self._unlock()
                raise IndexMismatchError(
                    f"index at {self.directory} holds {stored['dim']}-d vectors of model pack "
                    f"{stored['model_pack']!r}, not {embedding_dim}-d {model_pack!r}: use another INDEX_DIR "
                    "or rebuild it with `python -m gpu_app reindex`"
                )
            self._db, self.dim, self.model_pack = db, embedding_dim, model_pack
            self._load_or_rebuild_faiss()

    def close(self) -> None:
        with self._lock:
            if self._db is None:
                return
            self.flush()
            self._db.close()
            self._db = None
            self._faiss = None
            self._halves = None
            if self._writer is not None:
                self._writer.shutdown()
                self._writer = None
            self._unlock()

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def flush(self) -> None:
        """Save the FAISS cache with the generation it reflects, so the next start skips a rebuild."""
        import faiss

        with self._lock:
            if self._faiss is None:
                return
            tmp = self._faiss_path.with_suffix(".faiss.tmp")
            faiss.write_index(self._faiss, str(tmp))
            tmp.replace(self._faiss_path)
            if self._halves is not None:
                tmp = self._halves_path.with_suffix(".tmp")
                db = self._require_db()
                rows = int(db.execute("SELECT COALESCE(MAX(id), 0) FROM faces").fetchone()[0]) + 1
                with tmp.open("wb") as out:
                    np.save(out, self._halves[:rows])  # the rows in use, not the room grown ahead of them
                tmp.replace(self._halves_path)
                self._float16_path.unlink(missing_ok=True)
            # Written last: a crash before it leaves the older generation, so the next open rebuilds.
            self._faiss_path.with_suffix(".json").write_text(json.dumps({"generation": self._generation}))

    @property
    def probes(self) -> int:
        """IVF lists scanned per unfiltered query (0 while the index is exact)."""
        lists = _nlist(self._faiss)
        if lists == 0:
            return 0
        return min(lists, self._probes if self._probes is not None else math.ceil(PROBE_SHARE * lists))

    # --- writes ----------------------------------------------------------------------------
    def add(self, records: Sequence[FaceRecord]) -> None:
        if not records:
            return
        for record in records:
            check_record(record, self.dim, self.model_pack, "this index")
        latest = list({r.face_id: r for r in records}.values())  # a face_id twice: the last one wins
        vectors = np.array([r.embedding for r in latest], dtype=np.float32)  # shapes checked above
        blobs = vectors.tobytes()
        width = vectors.shape[1] * 4
        with self._lock:
            db = self._require_db()
            self._sync_faiss()
            cache_update: Future[None] | None = None
            db.execute("BEGIN IMMEDIATE")
            try:
                # One statement for the whole batch: ids are assigned here (an upsert keeps its id),
                # so no per-row RETURNING round trip is needed.
                existing = self._ids_of_faces([r.face_id for r in latest])
                next_id = int(db.execute("SELECT COALESCE(MAX(id), 0) FROM faces").fetchone()[0]) + 1
                ids = []
                for record in latest:
                    known = existing.get(record.face_id)
                    ids.append(known if known is not None else next_id)
                    next_id += known is None
                id_array = np.asarray(ids, dtype=np.int64)
                # The cache takes the vectors on another thread while SQLite writes them (both release
                # the GIL): a batch costs the slower of the two, not their sum.
                cache_update = self._cache_writer().submit(
                    self._update_cache, id_array, vectors, np.asarray(list(existing.values()), dtype=np.int64)
                )
                db.executemany(
                    """INSERT INTO faces (id, face_id, image_id, storage_key, model_pack, collection,
                                          det_score, bbox, created_at, embedding)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT (face_id) DO UPDATE SET
                         image_id = excluded.image_id, storage_key = excluded.storage_key,
                         model_pack = excluded.model_pack, collection = excluded.collection,
                         det_score = excluded.det_score, bbox = excluded.bbox,
                         created_at = excluded.created_at, embedding = excluded.embedding""",
                    [
                        (
                            row_id,
                            r.face_id,
                            r.image_id,
                            r.storage_key,
                            r.model_pack,
                            r.collection,
                            float(r.det_score),
                            _bbox_json(r.bbox),
                            r.created_at,
                            blobs[row * width : (row + 1) * width],
                        )
                        for row, (row_id, r) in enumerate(zip(ids, latest, strict=True))
                    ],
                )
                generation = self._bump_generation()
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                if cache_update is not None:
                    with contextlib.suppress(Exception):
                        cache_update.result()
                    self._generation = -1  # the cache holds vectors SQLite refused: rebuilt at next use
                raise
            try:
                cache_update.result()
            except BaseException:
                self._generation = -1  # stored, but the cache missed them: rebuilt at next use
                raise
            self._generation = generation
            self._forget_bits(id_array)
            for collection, bits in self._collection_bits.items():
                # _set_bits returns a new, grown array once an id passes the bitmap's end: keep it.
                self._collection_bits[collection] = _set_bits(
                    bits, id_array[[r.collection == collection for r in latest]]
                )
            if self._faiss.ntotal > self.exact_limit and _nlist_for(self._faiss.ntotal) >= 2 * _nlist(
                self._faiss
            ):
                self._rebuild_faiss()  # exact -> approximate, or lists too long for the probes

    def _update_cache(self, ids: np.ndarray, vectors: np.ndarray, replaced: np.ndarray) -> None:
        if len(replaced):
            self._faiss.remove_ids(replaced)
        self._faiss.add_with_ids(vectors, ids)
        if self._halves is not None:
            self._halves = _put_rows(self._halves, ids, vectors)

    def _cache_writer(self) -> ThreadPoolExecutor:
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="faiss-cache")
        return self._writer

    def delete_image(self, image_id: str) -> int:
        with self._lock:
            db = self._require_db()
            self._sync_faiss()
            db.execute("BEGIN IMMEDIATE")
            try:
                ids = self._ids_where("image_id = ?", [image_id])
                db.execute("DELETE FROM faces WHERE image_id = ?", (image_id,))
                generation = self._bump_generation() if ids else self._generation
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            if ids:
                self._faiss.remove_ids(np.asarray(ids, dtype=np.int64))
                self._generation = generation
                self._forget_bits(np.asarray(ids, dtype=np.int64))
            return len(ids)

    # --- reads -----------------------------------------------------------------------------
    def search(
        self,
        query: np.ndarray,
        k: int,
        threshold: float,
        filters: SearchFilters | None = None,
    ) -> list[SearchHit]:
        return self.search_many(np.asarray(query, dtype=np.float32).reshape(1, -1), k, threshold, filters)[0]

    def search_many(
        self,
        queries: np.ndarray,
        k: int,
        threshold: float,
        filters: SearchFilters | None = None,
    ) -> list[list[SearchHit]]:
        """`search` of each row of `queries`: one FAISS call and one read of the rows for them all."""
        vectors = np.asarray(queries, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise IndexMismatchError(f"query has {vectors.shape[-1]} dimensions, the index {self.dim}")
        if len(vectors) == 0:
            return []
        narrowed = self._narrowing(filters)
        with self._lock:
            self._sync_faiss()
            if narrowed is not None and (narrowed.image_id is not None or narrowed.model_pack is not None):
                # a few faces: score them directly
                found_each = [self._exact_among(vector, k, narrowed) for vector in vectors]
            else:
                found_each = self._faiss_search(vectors, k, narrowed.collection if narrowed else None)
            rescore = _nlist(self._faiss) > 0  # approximate ranks; the stored float32 vectors score the best
            if not rescore:  # the scores are exact: read only the rows that pass the threshold
                found_each = [[(i, s) for i, s in found if s >= threshold] for found in found_each]
            rows = self._rows_by_id({i for found in found_each for i, _ in found}, with_embedding=rescore)
        answers = []
        for vector, found in zip(vectors, found_each, strict=True):
            if rescore:
                exact = [
                    (i, float(np.frombuffer(rows[i][9], dtype=np.float32) @ vector))
                    for i, _ in found
                    if i in rows
                ]
                found = [(i, s) for i, s in sorted(exact, key=lambda hit: -hit[1])[:k] if s >= threshold]
            answers.append(
                [
                    SearchHit(
                        face_id=rows[i][1],
                        image_id=rows[i][2],
                        storage_key=rows[i][3],
                        collection=rows[i][5],
                        det_score=float(rows[i][6]),
                        bbox=_bbox_of(rows[i][7]),
                        similarity=min(1.0, score),
                    )
                    for i, score in found
                    if i in rows
                ]
            )
        return answers

    def _faiss_search(
        self, vectors: np.ndarray, k: int, collection: str | None
    ) -> list[list[tuple[int, float]]]:
        """Per query row. Exact: the k best. Approximate: the RERANK*k best of CANDIDATES by their
        bfloat16 copies."""
        import faiss

        approximate = _nlist(self._faiss) > 0
        wanted = min(max(CANDIDATES, RERANK * k) if approximate else k, self._faiss.ntotal)
        if wanted <= 0:
            return [[] for _ in vectors]
        probes = self.probes
        selector = None
        if collection is not None:
            bits = self._bits_of(collection)
            members = int(np.bitwise_count(bits).sum())
            if members == 0:
                return [[] for _ in vectors]
            # faiss's wrapper takes the packed bitmap alone; mypy reads the SWIG (n, bitmap) signature.
            selector = faiss.IDSelectorBitmap(bits)  # type: ignore[call-arg,arg-type]
            # The lists hold members and others alike: scan more lists the rarer the members are
            # (by the square root of their share: 3x the lists for 10%, every list below ~0.2%, so
            # a small collection is searched exactly); non-members cost only a bit test.
            probes = math.ceil(probes * math.sqrt(self._faiss.ntotal / members))
        # faiss's wrappers construct search parameters from keywords (not in the SWIG signatures).
        params: faiss.SearchParameters | None
        if approximate:
            params = faiss.SearchParametersIVF(nprobe=min(probes, _nlist(self._faiss)), sel=selector)  # type: ignore[call-arg]
        else:
            params = faiss.SearchParameters(sel=selector) if selector is not None else None  # type: ignore[call-arg]
        scores, ids = self._faiss.search(vectors, wanted, params=params)
        if not approximate:
            return [
                [(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i >= 0]
                for row_ids, row_scores in zip(ids, scores, strict=True)
            ]
        answers = []
        for vector, row_ids in zip(vectors, ids, strict=True):
            found = np.sort(row_ids[row_ids >= 0])  # in row order: the gather reads memory forwards
            rescored = self._rescore(found, vector)
            best = min(RERANK * k, len(found))
            top = np.argpartition(-rescored, best - 1)[:best] if best < len(found) else np.arange(len(found))
            answers.append([(int(found[i]), float(rescored[i])) for i in top])
        return answers

    def _rescore(self, ids: np.ndarray, vector: np.ndarray) -> np.ndarray:
        """Scores of the bfloat16 copies of rows `ids`. Into buffers reused from query to query: a fresh
        4 MB array per query costs ~4 ms of page faults, more than the arithmetic."""
        assert self._halves is not None  # kept beside every approximate index
        if self._rescore_buffers is None or len(self._rescore_buffers[0]) < len(ids):
            shape = (max(len(ids), CANDIDATES), self.dim)
            self._rescore_buffers = (np.empty(shape, dtype=np.uint16), np.empty(shape, dtype=np.uint32))
        gathered, widened = (buffer[: len(ids)] for buffer in self._rescore_buffers)
        np.take(self._halves, ids, axis=0, out=gathered)
        # einsum, not `@`: a BLAS matrix-vector product starts its threads, which stall on a busy machine.
        return np.einsum("ij,j->i", _widen(gathered, out=widened), vector)

    def _exact_among(self, vector: np.ndarray, k: int, filters: SearchFilters) -> list[tuple[int, float]]:
        where, params = _filter_sql(filters)
        rows = self._require_db().execute(f"SELECT id, embedding FROM faces WHERE {where}", params).fetchall()  # noqa: S608
        if not rows:
            return []
        ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
        matrix = np.frombuffer(b"".join(row[1] for row in rows), dtype=np.float32).reshape(len(rows), -1)
        scores = matrix @ vector
        order = np.argsort(-scores, kind="stable")[:k]
        return [(int(ids[i]), float(scores[i])) for i in order]

    def get(self, face_id: str) -> FaceRecord | None:
        with self._lock:
            rows = self._rows_where("face_id = ?", [face_id])
        return _record(rows[0]) if rows else None

    def iter_records(self, batch_size: int = 1000) -> Iterable[list[FaceRecord]]:
        """Every stored record, in insertion order, in batches (for export and migration)."""
        last = 0
        while True:
            with self._lock:
                rows = self._rows_where("id > ? ORDER BY id LIMIT ?", [last, batch_size])
            if not rows:
                return
            last = rows[-1][0]
            yield [_record(row) for row in rows]

    def count(self, filters: SearchFilters | None = None) -> int:
        where, params = _filter_sql(self._narrowing(filters))
        with self._lock:
            # `where` only ever holds fixed column names from _filter_sql; values are parameters.
            sql = "SELECT COUNT(*) FROM faces" + (f" WHERE {where}" if where else "")  # noqa: S608
            return int(self._require_db().execute(sql, params).fetchone()[0])

    def health(self) -> IndexHealth:
        try:
            count = self.count()
        except (IndexUnavailableError, sqlite3.Error) as exc:
            return IndexHealth(ok=False, backend=self.backend, detail={"error": str(exc)})
        return IndexHealth(
            ok=True,
            backend=self.backend,
            count=count,
            detail={"path": str(self.directory), "dim": self.dim, "model_pack": self.model_pack},
        )

    # --- internals -------------------------------------------------------------------------
    def _require_db(self) -> sqlite3.Connection:
        if self._db is None:
            raise IndexUnavailableError("embedded index is not open")
        return self._db

    def _narrowing(self, filters: SearchFilters | None) -> SearchFilters | None:
        """Drop a model_pack filter equal to this index's pack: every row has it (open() and add()
        refuse any other), and an ID selector over every row costs ~4x a plain search at 100k."""
        if filters is not None and filters.model_pack == self.model_pack:
            return SearchFilters(collection=filters.collection, image_id=filters.image_id)
        return filters

    def _ids_of_faces(self, face_ids: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        db = self._require_db()
        for start in range(0, len(face_ids), SQL_CHUNK):
            chunk = face_ids[start : start + SQL_CHUNK]
            sql = f"SELECT face_id, id FROM faces WHERE face_id IN ({','.join('?' * len(chunk))})"  # noqa: S608
            found.update(db.execute(sql, chunk).fetchall())
        return found

    def _bits_of(self, collection: str) -> np.ndarray:
        """The collection's membership bitmap over row ids: read once, then kept by add/delete."""
        bits = self._collection_bits.get(collection)
        if bits is None:
            ids = np.asarray(self._ids_where("collection = ?", [collection]), dtype=np.int64)
            bits = np.zeros(0, dtype=np.uint8)
            self._collection_bits[collection] = bits = _set_bits(bits, ids)
        return bits

    def _forget_bits(self, ids: np.ndarray) -> None:
        """Clear `ids` from every cached collection (an upsert may have moved a face)."""
        for bits in self._collection_bits.values():
            inside = ids[ids < len(bits) * 8]
            np.bitwise_and.at(bits, inside >> 3, ~np.left_shift(1, inside & 7).astype(np.uint8))

    def _ids_where(self, where: str, params: Sequence[Any]) -> list[int]:
        return [row[0] for row in self._require_db().execute(f"SELECT id FROM faces WHERE {where}", params)]  # noqa: S608

    def _rows_by_id(self, ids: set[int], with_embedding: bool) -> dict[int, tuple[Any, ...]]:
        """Rows of these ids by id; without the vector (None in its place) unless asked for."""
        columns = _COLUMNS if with_embedding else _COLUMNS.replace(", embedding", ", NULL")
        wanted, rows = sorted(ids), dict[int, tuple[Any, ...]]()
        for start in range(0, len(wanted), SQL_CHUNK):
            chunk = wanted[start : start + SQL_CHUNK]
            sql = f"SELECT {columns} FROM faces WHERE id IN ({','.join('?' * len(chunk))})"  # noqa: S608
            rows.update((row[0], row) for row in self._require_db().execute(sql, chunk))
        return rows

    def _rows_where(self, where: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self._require_db().execute(f"SELECT {_COLUMNS} FROM faces WHERE {where}", params).fetchall()  # noqa: S608

    def _db_generation(self) -> int:
        row = self._require_db().execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0])

    def _bump_generation(self) -> int:
        self._require_db().execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"
        )
        return self._db_generation()

    def _sync_faiss(self) -> None:
        """Rebuild the cache when another process wrote since we last looked."""
        if self._db_generation() != self._generation:
            self._rebuild_faiss()

    def _load_or_rebuild_faiss(self) -> None:
        import faiss

        marker = self._faiss_path.with_suffix(".json")
        generation = self._db_generation()
        if self._faiss_path.exists() and marker.exists():
            try:
                saved = json.loads(marker.read_text())["generation"]
                if saved == generation:
                    index = faiss.read_index(str(self._faiss_path))
                    halves = self._load_halves() if _nlist(index) > 0 else None
                    if index.d == self.dim and (halves is None or halves.shape[1:] == (self.dim,)):
                        self._faiss, self._halves, self._generation = index, halves, generation
                        return
            except (OSError, ValueError, KeyError, RuntimeError):
                pass  # an unreadable cache is rebuilt below
        self._rebuild_faiss()

    def _load_halves(self) -> np.ndarray:
        """The saved bfloat16 copy, or the float16 one an earlier version saved, converted (once: the
        next flush writes the bfloat16 file and deletes the float16 one)."""
        if self._halves_path.exists() or not self._float16_path.exists():
            halves = np.load(self._halves_path)
            if halves.dtype != np.uint16:
                raise ValueError(f"{self._halves_path} holds {halves.dtype}, not bfloat16 bits")
            return halves
        legacy = np.load(self._float16_path, mmap_mode="r")
        halves = np.empty(legacy.shape, dtype=np.uint16)
        for start in range(0, len(legacy), SLICE_ROWS):
            part = legacy[start : start + SLICE_ROWS]
            halves[start : start + SLICE_ROWS] = _to_bfloat16(part.astype(np.float32))
        return halves

    def _rebuild_faiss(self) -> None:
        """Build the cache: exact up to `exact_limit` vectors, IVF trained on a sample above.

        An IVF index is trained and filled from the bfloat16 copy (its rounding is far finer than the
        4-bit codes), slice by slice: a float32 matrix of every vector (2 GB at 1M) costs more in page
        faults than the training. A retrain as the index grows reuses the copy while it is current;
        otherwise the copy is first refilled from SQLite, the source of truth."""
        import faiss

        generation = self._db_generation()
        db = self._require_db()
        if int(db.execute("SELECT COUNT(*) FROM faces").fetchone()[0]) <= self.exact_limit:
            ids, vectors = self._stored_vectors()
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
            index.add_with_ids(vectors, ids)
            self._faiss, self._halves, self._generation = index, None, generation
            self._collection_bits.clear()  # rebuilt lazily: another process may have written
            return
        if self._halves is not None and self._generation == generation:
            # Ids from the smallest index (a covering scan), not the table with its 2 KB rows.
            ids = np.sort(np.fromiter((row[0] for row in db.execute("SELECT id FROM faces")), dtype=np.int64))
            halves = self._halves
        else:
            ids, halves = self._stored_halves()
        # Growing out of exact search, the first IVF index gets the lists of 4x its vectors: its next
        # retrain comes at 16x instead of 4x, one fewer re-adding every vector (at 65k on the way to
        # 1M, ~0.8 s of the bulk load); 40 training points per list are still there (256 lists at 20k).
        growing_from_exact = self._faiss is not None and _nlist(self._faiss) == 0
        nlist = _nlist_for(4 * len(ids) if growing_from_exact else len(ids))
        index = new_approximate_index(self.dim, nlist)
        # k-means on ~40 points per list: enough for the centroids, far faster than all of them.
        # One thread: the product quantiser is many small k-means, and at each of their thousands
        # of OpenMP barriers a second thread spins while the other waits for a busy core (6x slower
        # than one thread under load, measured at 512-d).
        sample = np.random.default_rng(0).choice(len(ids), min(len(ids), 40 * nlist), replace=False)
        index.train(_widen(halves[ids[np.sort(sample)]]))
        buffer = np.empty((SLICE_ROWS, self.dim), dtype=np.uint32)
        with _all_cores():
            for start in range(0, len(ids), SLICE_ROWS):
                part = ids[start : start + SLICE_ROWS]
                index.add_with_ids(_widen(halves[part], out=buffer[: len(part)]), part)
        self._faiss, self._halves, self._generation = index, halves, generation
        self._collection_bits.clear()  # rebuilt lazily: another process may have written

    def _stored_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """Every row id and float32 vector in SQLite, in id order (an exact index's few)."""
        rows = self._require_db().execute("SELECT id, embedding FROM faces ORDER BY id").fetchall()
        ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
        vectors = np.frombuffer(b"".join(row[1] for row in rows), dtype=np.float32)
        return ids, vectors.reshape(len(rows), self.dim)

    def _stored_halves(self) -> tuple[np.ndarray, np.ndarray]:
        """Every row id in SQLite, in id order, and the bfloat16 copy of their vectors by id."""
        db = self._require_db()
        highest = int(db.execute("SELECT COALESCE(MAX(id), 0) FROM faces").fetchone()[0])
        halves = np.zeros((highest + 1, self.dim), dtype=np.uint16)  # allocated once: no doubling
        parts = []
        cursor = db.execute("SELECT id, embedding FROM faces ORDER BY id")
        while batch := cursor.fetchmany(SLICE_ROWS):
            ids = np.fromiter((row[0] for row in batch), dtype=np.int64, count=len(batch))
            vectors = np.frombuffer(b"".join(row[1] for row in batch), dtype=np.float32)
            halves = _put_rows(halves, ids, vectors.reshape(len(batch), self.dim))
            parts.append(ids)
        return (np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)), halves


@contextlib.contextmanager
def _all_cores() -> Iterator[None]:
    """FAISS threads for a bulk add (assigning lists); queries and training stay on one thread."""
    import faiss

    faiss.omp_set_num_threads(len(os.sched_getaffinity(0)))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(1)


def new_approximate_index(dim: int, nlist: int) -> Any:
    """IVF over 4-bit product-quantised codes, one sub-quantiser per 8 dimensions (dim/16 bytes a
    vector: 32 at 512-d), scanned by FAISS's SIMD fast scan; search re-scores its candidates."""
    import faiss

    quantizer = faiss.IndexFlatIP(dim)  # the IVF index keeps a reference to it (faiss's wrapper)
    subquantizers = max(m for m in range(1, max(1, dim // 8) + 1) if dim % m == 0)
    return faiss.IndexIVFPQFastScan(quantizer, dim, nlist, subquantizers, 4, faiss.METRIC_INNER_PRODUCT)


def _nlist(index: Any) -> int:
    """Lists of an IVF index; 0 for the exact flat one."""
    return int(getattr(index, "nlist", 0))


def _nlist_for(count: int) -> int:
    """A power of two near sqrt(count): about sqrt(count) vectors per list (512 lists at 1M). Long
    lists cost the fast scan little, and assigning a new vector costs one product per list."""
    return max(32, min(8192, 2 ** int(math.log2(math.sqrt(max(count, 1))))))


def _put_rows(matrix: np.ndarray, ids: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Write `vectors` (as bfloat16 bits) at rows `ids`, growing the matrix (doubling) past its end;
    returns it."""
    needed = int(ids.max()) + 1 if len(ids) else 0
    if needed > len(matrix):
        grown = np.zeros((max(needed, 2 * len(matrix)), matrix.shape[1]), dtype=np.uint16)
        grown[: len(matrix)] = matrix
        matrix = grown
    for start in range(0, len(ids), SLICE_ROWS):
        matrix[ids[start : start + SLICE_ROWS]] = _to_bfloat16(vectors[start : start + SLICE_ROWS])
    return matrix


def _to_bfloat16(vectors: np.ndarray) -> np.ndarray:
    """bfloat16 bits (uint16) of float32 values, rounded to nearest even; finite values only."""
    bits = np.ascontiguousarray(vectors, dtype=np.float32).view(np.uint32)
    # One temporary, updated in place. Constants as np.uint32: with Python ints numpy takes a loop
    # ~10x slower (measured: 1.6 vs 0.17 ms for 1,000 x 512).
    rounded = bits >> _SIXTEEN
    rounded &= np.uint32(1)
    rounded += np.uint32(0x7FFF)
    rounded += bits
    rounded >>= _SIXTEEN
    return rounded.astype(np.uint16)


_SIXTEEN = np.uint32(16)  # bits between bfloat16 and float32


def _widen(halves: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The float32 values of bfloat16 bits (exact: a shift), into `out` (uint32, same shape) if given."""
    widened = np.empty(halves.shape, dtype=np.uint32) if out is None else out
    np.left_shift(halves, _SIXTEEN, out=widened, dtype=np.uint32)
    return widened.view(np.float32)


def _set_bits(bits: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Set `ids` in the bitmap, growing it (doubling) when an id is past its end; returns it."""
    if len(ids) == 0:
        return bits
    needed = int(ids.max()) // 8 + 1
    if needed > len(bits):
        grown = np.zeros(max(needed, 2 * len(bits)), dtype=np.uint8)
        grown[: len(bits)] = bits
        bits = grown
    np.bitwise_or.at(bits, ids >> 3, np.left_shift(1, ids & 7).astype(np.uint8))
    return bits


def _bbox_json(bbox: Sequence[float]) -> str:
    """json.dumps of the box, 10x faster: the repr of a finite float is its JSON text."""
    values = [float(v) for v in bbox]
    if all(map(math.isfinite, values)):
        return "[" + ", ".join(map(repr, values)) + "]"
    return json.dumps(values)


def _bbox_of(text: str) -> tuple[float, float, float, float]:
    """json.loads of a stored box, ~3x faster (a search reads one per hit): `_bbox_json` writes
    four floats between brackets, and float() reads each number, NaN and Infinity as json does."""
    x1, y1, x2, y2 = map(float, text[1:-1].split(","))
    return x1, y1, x2, y2


def _filter_sql(filters: SearchFilters | None) -> tuple[str, list[Any]]:
    if filters is None:
        return "", []
    clauses, params = [], []
    for column in ("collection", "image_id", "model_pack"):
        value = getattr(filters, column)
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    return " AND ".join(clauses), params


def _record(row: tuple[Any, ...]) -> FaceRecord:
    return FaceRecord(
        face_id=row[1],
        image_id=row[2],
        storage_key=row[3],
        model_pack=row[4],
        collection=row[5],
        det_score=float(row[6]),
        bbox=_bbox_of(row[7]),
        created_at=row[8],
        embedding=np.frombuffer(row[9], dtype=np.float32).copy(),
    )
