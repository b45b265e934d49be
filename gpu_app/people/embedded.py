"""People in SQLite, in a file beside the embedded index's vectors (INDEX_DIR/people.sqlite3).

Kept apart from faces.sqlite3 so the vector index's schema and its FAISS cache generation are not
touched by naming or merging people; face ids are deterministic, so a `reindex` keeps them valid.
"""

from __future__ import annotations

import builtins
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gpu_app.people.base import Assignment, Person, PersonNotFoundError

PEOPLE_FILE = "people.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS people (
    person_id  TEXT PRIMARY KEY,
    collection TEXT NOT NULL,
    name       TEXT,
    hidden     INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS people_collection ON people (collection);
CREATE TABLE IF NOT EXISTS person_faces (
    face_id    TEXT PRIMARY KEY,
    person_id  TEXT NOT NULL REFERENCES people (person_id) ON DELETE CASCADE,
    collection TEXT NOT NULL,
    det_score  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS person_faces_person ON person_faces (person_id, det_score);
"""
# Face count and the best-detected face of each person, in one pass over its faces.
_PEOPLE_SELECT = """
SELECT p.person_id, p.collection, p.name, p.hidden, p.created_at,
       (SELECT COUNT(*) FROM person_faces f WHERE f.person_id = p.person_id) AS face_count,
       (SELECT f.face_id FROM person_faces f WHERE f.person_id = p.person_id
        ORDER BY f.det_score DESC, f.face_id LIMIT 1) AS representative
FROM people p
"""


class SqlitePeopleStore:
    backend = "embedded"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._lock = threading.RLock()

    def open(self) -> None:
        with self._lock:
            if self._db is not None:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            # As the vector index: no fsync per commit (a power loss may drop the last placements,
            # never corrupt the file; `recluster` redoes them), which made each placement ~5 ms.
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.executescript(_SCHEMA)
            self._db = db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # --- reads -------------------------------------------------------------------------------
    def person_of(self, face_ids: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        with self._lock:
            for start in range(0, len(face_ids), 500):
                chunk = list(face_ids[start : start + 500])
                marks = ",".join("?" * len(chunk))
                found.update(
                    self._conn().execute(
                        f"SELECT face_id, person_id FROM person_faces WHERE face_id IN ({marks})",  # noqa: S608
                        chunk,
                    )
                )
        return found

    def get(self, person_id: str) -> Person | None:
        with self._lock:
            row = self._conn().execute(_PEOPLE_SELECT + " WHERE p.person_id = ?", (person_id,)).fetchone()
        return _person(row) if row else None

    def list(
        self, collection: str | None, offset: int, limit: int, include_hidden: bool
    ) -> tuple[list[Person], int]:
        clauses, params = [], []
        if collection is not None:
            clauses.append("p.collection = ?")
            params.append(collection)
        if not include_hidden:
            clauses.append("p.hidden = 0")
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._lock:
            db = self._conn()
            total = db.execute(f"SELECT COUNT(*) FROM people p{where}", params).fetchone()[0]  # noqa: S608
            rows = db.execute(
                f"{_PEOPLE_SELECT}{where} "
                "ORDER BY face_count DESC, p.created_at, p.person_id LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
        return [_person(row) for row in rows], int(total)

    def faces(self, person_id: str, offset: int, limit: int) -> tuple[builtins.list[str], int]:
        with self._lock:
            db = self._conn()
            total = db.execute(
                "SELECT COUNT(*) FROM person_faces WHERE person_id = ?", (person_id,)
            ).fetchone()[0]
            rows = db.execute(
                "SELECT face_id FROM person_faces WHERE person_id = ? "
                "ORDER BY det_score DESC, face_id LIMIT ? OFFSET ?",
                (person_id, limit, offset),
            ).fetchall()
        return [row[0] for row in rows], int(total)

    # --- writes ------------------------------------------------------------------------------
    def create(
        self,
        collection: str,
        created_at: str,
        person_id: str,
        name: str | None = None,
        hidden: bool = False,
    ) -> Person:
        with self._lock:
            self._conn().execute(
                "INSERT INTO people (person_id, collection, name, hidden, created_at) VALUES (?, ?, ?, ?, ?)",
                (person_id, collection, name, int(hidden), created_at),
            )
        return Person(person_id, collection, name, hidden, 0, None, created_at)

    def assign(self, assignments: Sequence[Assignment]) -> None:
        if not assignments:
            return
        with self._lock:
            self._write(
                lambda db: db.executemany(
                    """INSERT INTO person_faces (face_id, person_id, collection, det_score)
                       VALUES (?, ?, ?, ?)
                       ON CONFLICT (face_id) DO UPDATE SET person_id = excluded.person_id,
                         collection = excluded.collection, det_score = excluded.det_score""",
                    [(a.face_id, a.person_id, a.collection, float(a.det_score)) for a in assignments],
                )
            )

    def unassign(self, face_ids: Sequence[str]) -> int:
        removed = 0
        with self._lock:
            for start in range(0, len(face_ids), 500):
                chunk = list(face_ids[start : start + 500])
                marks = ",".join("?" * len(chunk))
                removed += (
                    self._conn()
                    .execute(
                        f"DELETE FROM person_faces WHERE face_id IN ({marks})",  # noqa: S608
                        chunk,
                    )
                    .rowcount
                )
        return removed

    def update(self, person_id: str, *, name: str | None, set_name: bool, hidden: bool | None) -> Person:
        with self._lock:
            db = self._conn()
            if set_name:
                db.execute("UPDATE people SET name = ? WHERE person_id = ?", (name, person_id))
            if hidden is not None:
                db.execute("UPDATE people SET hidden = ? WHERE person_id = ?", (int(hidden), person_id))
            person = self.get(person_id)
        if person is None:
            raise PersonNotFoundError(person_id)
        return person

    def delete(self, person_id: str) -> None:
        with self._lock:
            self._write(lambda db: db.execute("DELETE FROM people WHERE person_id = ?", (person_id,)))

    def clear(self, collection: str) -> None:
        with self._lock:
            self._write(lambda db: db.execute("DELETE FROM people WHERE collection = ?", (collection,)))

    # --- internals ---------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.open()
        assert self._db is not None
        return self._db

    def _write(self, statement: Any) -> None:
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            statement(db)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise


def _person(row: tuple[Any, ...]) -> Person:
    return Person(
        person_id=row[0],
        collection=row[1],
        name=row[2],
        hidden=bool(row[3]),
        created_at=row[4],
        face_count=int(row[5]),
        representative_face_id=row[6],
    )
