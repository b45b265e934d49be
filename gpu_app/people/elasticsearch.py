"""People beside an Elasticsearch face index: a people index and a face -> person index.

`<INDEX_NAME>-people` holds one document per person (name, hidden, collection); `<INDEX_NAME>-person-faces`
one per assigned face (`_id` = face_id, its person and detection score). The face -> person field
lives in its own small index rather than on the face documents: Elasticsearch rewrites a whole
document on every update, so naming-independent moves and merges would re-index face vectors
into the HNSW graph each time, and the face index's strict mapping stays as it is.

Writes use `refresh=wait_for`, so the next listing sees them; `person_of` reads with `_mget`, which
is real time. Requests go through the face index's retry wrapper (backoff on 429/5xx, outages as
IndexUnavailableError). A collection may hold up to MAX_PEOPLE people for sorting by face count.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gpu_app.people.base import Assignment, Person, PersonNotFoundError

if TYPE_CHECKING:
    from gpu_app.index.elasticsearch import ElasticsearchIndex

MAX_PEOPLE = 10_000  # one terms aggregation / one page of people per listing
_PEOPLE_MAPPINGS = {
    "dynamic": "strict",
    "properties": {
        "person_id": {"type": "keyword"},
        "collection": {"type": "keyword"},
        "name": {"type": "keyword"},
        "hidden": {"type": "boolean"},
        "created_at": {"type": "date"},
    },
}
_FACES_MAPPINGS = {
    "dynamic": "strict",
    "properties": {
        "face_id": {"type": "keyword"},
        "person_id": {"type": "keyword"},
        "collection": {"type": "keyword"},
        "det_score": {"type": "float"},
    },
}


class ElasticsearchPeopleStore:
    backend = "elasticsearch"

    def __init__(self, index: ElasticsearchIndex) -> None:
        self._index = index
        self._client = index._client
        self.people_index = f"{index.index_name}-people"
        self.faces_index = f"{index.index_name}-person-faces"
        self._opened = False

    @classmethod
    def beside(cls, index: Any) -> ElasticsearchPeopleStore:
        return cls(index)

    def _call(self, what: str, fn: Any) -> Any:
        return self._index._call(what, fn)

    # --- lifecycle -----------------------------------------------------------------------------
    def open(self) -> None:
        if self._opened:
            return
        from elasticsearch import BadRequestError

        for name, mappings in ((self.people_index, _PEOPLE_MAPPINGS), (self.faces_index, _FACES_MAPPINGS)):
            if self._call("check people index", lambda n=name: bool(self._client.indices.exists(index=n))):
                continue
            try:
                self._call(
                    "create people index",
                    lambda n=name, m=mappings: self._client.indices.create(index=n, mappings=m),
                )
            except Exception as exc:  # created concurrently by another instance: fine
                if not isinstance(exc.__cause__, BadRequestError):
                    raise
        self._opened = True

    def close(self) -> None:
        self._opened = False  # the client belongs to the face index

    # --- reads ---------------------------------------------------------------------------------
    def person_of(self, face_ids: Sequence[str]) -> dict[str, str]:
        self.open()
        found: dict[str, str] = {}
        for start in range(0, len(face_ids), 1000):
            chunk = list(face_ids[start : start + 1000])
            response = self._call(
                "read face people", lambda c=chunk: self._client.mget(index=self.faces_index, ids=c)
            )
            for doc in response["docs"]:
                if doc.get("found"):
                    found[doc["_id"]] = doc["_source"]["person_id"]
        return found

    def get(self, person_id: str) -> Person | None:
        self.open()
        doc = self._get_doc(person_id)
        if doc is None:
            return None
        counts = self._face_counts([person_id])
        return self._person(doc, counts.get(person_id, 0))

    def list(
        self, collection: str | None, offset: int, limit: int, include_hidden: bool
    ) -> tuple[list[Person], int]:
        self.open()
        clauses: list[dict[str, Any]] = []
        if collection is not None:
            clauses.append({"term": {"collection": collection}})
        if not include_hidden:
            clauses.append({"term": {"hidden": False}})
        response = self._call(
            "list people",
            lambda: self._client.search(
                index=self.people_index,
                query={"bool": {"filter": clauses}},
                size=MAX_PEOPLE,
                track_total_hits=True,
            ),
        )
        docs = [hit["_source"] for hit in response["hits"]["hits"]]
        counts = self._face_counts([d["person_id"] for d in docs])
        ordered = sorted(
            docs, key=lambda d: (-counts.get(d["person_id"], 0), d["created_at"], d["person_id"])
        )
        page = [self._person(d, counts.get(d["person_id"], 0)) for d in ordered[offset : offset + limit]]
        return page, int(response["hits"]["total"]["value"])

    def faces(self, person_id: str, offset: int, limit: int) -> tuple[builtins.list[str], int]:
        self.open()
        response = self._call(
            "list person faces",
            lambda: self._client.search(
                index=self.faces_index,
                query={"bool": {"filter": [{"term": {"person_id": person_id}}]}},
                sort=[{"det_score": {"order": "desc"}}, {"face_id": {"order": "asc"}}],
                from_=offset,
                size=limit,
                track_total_hits=True,
            ),
        )
        hits = response["hits"]
        return [h["_source"]["face_id"] for h in hits["hits"]], int(hits["total"]["value"])

    # --- writes --------------------------------------------------------------------------------
    def create(
        self,
        collection: str,
        created_at: str,
        person_id: str,
        name: str | None = None,
        hidden: bool = False,
    ) -> Person:
        self.open()
        doc = {
            "person_id": person_id,
            "collection": collection,
            "name": name,
            "hidden": hidden,
            "created_at": created_at,
        }
        self._bulk(self.people_index, [({"index": {"_id": person_id}}, doc)])
        return self._person(doc, 0)

    def assign(self, assignments: Sequence[Assignment]) -> None:
        self.open()
        self._bulk(
            self.faces_index,
            [
                (
                    {"index": {"_id": a.face_id}},
                    {
                        "face_id": a.face_id,
                        "person_id": a.person_id,
                        "collection": a.collection,
                        "det_score": float(a.det_score),
                    },
                )
                for a in assignments
            ],
        )

    def unassign(self, face_ids: Sequence[str]) -> int:
        self.open()
        items = self._bulk(self.faces_index, [({"delete": {"_id": f}}, None) for f in face_ids])
        return sum(1 for item in items if next(iter(item.values())).get("result") == "deleted")

    def update(self, person_id: str, *, name: str | None, set_name: bool, hidden: bool | None) -> Person:
        self.open()
        doc = self._get_doc(person_id)
        if doc is None:
            raise PersonNotFoundError(person_id)
        if set_name:
            doc["name"] = name
        if hidden is not None:
            doc["hidden"] = hidden
        self._bulk(self.people_index, [({"index": {"_id": person_id}}, doc)])
        person = self.get(person_id)
        assert person is not None
        return person

    def delete(self, person_id: str) -> None:
        self.open()
        self._delete_where(self.faces_index, {"term": {"person_id": person_id}})
        self._bulk(self.people_index, [({"delete": {"_id": person_id}}, None)])

    def clear(self, collection: str) -> None:
        self.open()
        for name in (self.faces_index, self.people_index):
            self._delete_where(name, {"term": {"collection": collection}})

    # --- internals -----------------------------------------------------------------------------
    def _get_doc(self, person_id: str) -> dict[str, Any] | None:
        from elasticsearch import NotFoundError

        def read() -> dict[str, Any] | None:
            try:
                return dict(self._client.get(index=self.people_index, id=person_id)["_source"])
            except NotFoundError:
                return None

        return self._call("read person", read)

    def _face_counts(self, person_ids: Sequence[str]) -> dict[str, int]:
        if not person_ids:
            return {}
        response = self._call(
            "count person faces",
            lambda: self._client.search(
                index=self.faces_index,
                query={"bool": {"filter": [{"terms": {"person_id": list(person_ids)}}]}},
                size=0,
                aggs={"people": {"terms": {"field": "person_id", "size": len(person_ids)}}},
            ),
        )
        return {b["key"]: int(b["doc_count"]) for b in response["aggregations"]["people"]["buckets"]}

    def _representative(self, person_id: str) -> str | None:
        faces, _ = self.faces(person_id, 0, 1)
        return faces[0] if faces else None

    def _person(self, doc: dict[str, Any], count: int) -> Person:
        return Person(
            person_id=doc["person_id"],
            collection=doc["collection"],
            name=doc.get("name"),
            hidden=bool(doc.get("hidden")),
            face_count=count,
            representative_face_id=self._representative(doc["person_id"]) if count else None,
            created_at=doc["created_at"],
        )

    def _bulk(
        self, index: str, actions: Sequence[tuple[dict[str, Any], dict[str, Any] | None]]
    ) -> builtins.list[Any]:
        from gpu_app.index import IndexWriteError

        items: list[Any] = []
        for start in range(0, len(actions), 500):
            operations: list[dict[str, Any]] = []
            for action, source in actions[start : start + 500]:
                operations.append(action)
                if source is not None:
                    operations.append(source)
            response = self._call(
                "write people",
                lambda o=operations: self._client.bulk(index=index, operations=o, refresh="wait_for"),
            )
            failures = {
                str(info.get("_id")): str(info["error"])
                for item in response["items"]
                if "error" in (info := next(iter(item.values())))
            }
            if failures:
                raise IndexWriteError(failures)
            items += response["items"]
        return items

    def _delete_where(self, index: str, query: dict[str, Any]) -> None:
        self._call(
            "delete people",
            lambda: self._client.delete_by_query(index=index, query=query, conflicts="proceed", refresh=True),
        )
