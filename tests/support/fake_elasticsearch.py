"""A fake Elasticsearch on 127.0.0.1: a real HTTP server for the real `elasticsearch` client.

It records every request, checks the compatibility media types an 8.x client must send, answers in
the documented REST formats (with `X-Elastic-Product: Elasticsearch`, which the client verifies)
and keeps a small in-memory index so reads see earlier writes. Tests script failures on top:
`script()` queues whole-request answers (429, 503, slow responses); `fail_items` makes single bulk
items fail.

Only what `gpu_app.index.elasticsearch` uses is emulated: index exists/create/mapping/delete,
_bulk (index, delete), _doc GET, _mget, _search (top-level knn; or a query with sort, from/size and a
terms aggregation, as the people store uses), _count, _delete_by_query, _refresh, cluster health.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import numpy as np

COMPAT_JSON = "application/vnd.elasticsearch+json; compatible-with=8"
COMPAT_NDJSON = "application/vnd.elasticsearch+x-ndjson; compatible-with=8"
RESPONSE_CONTENT_TYPE = "application/vnd.elasticsearch+json;compatible-with=8"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def ndjson(self) -> list[Any]:
        return [json.loads(line) for line in self.body.decode().splitlines() if line.strip()]


@dataclass(frozen=True)
class Scripted:
    """One canned answer; `status=0` answers as the emulation would. `delay` holds the answer back
    (the request is still applied first, like a cluster that answers after the client gave up)."""

    status: int
    body: Any = None
    delay: float = 0.0


@dataclass
class FakeIndex:
    mappings: dict[str, Any]
    settings: dict[str, Any]
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    uuid: str = field(default_factory=lambda: uuid.uuid4().hex[:22])


def error_body(status: int, error_type: str, reason: str, **extra: Any) -> dict[str, Any]:
    """The REST error format: {"error": {"root_cause": [...], "type", "reason"}, "status"}."""
    cause = {"type": error_type, "reason": reason, **extra}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


class FakeElasticsearch:
    def __init__(
        self,
        version: str = "8.19.0",
        *,
        exclude_source_vectors: bool = False,
        product_header: bool = True,
        expected_authorization: str | None = None,
    ) -> None:
        self.version = version
        # 9.2+ behaviour: vectors are left out of _source unless _source_exclude_vectors=false.
        self.exclude_source_vectors = exclude_source_vectors
        self.product_header = product_header
        self.expected_authorization = expected_authorization
        self.indices: dict[str, FakeIndex] = {}
        self.requests: list[RecordedRequest] = []
        self.problems: list[str] = []  # protocol violations by the client, asserted empty by tests
        # face_id -> [(status, type, reason), ...]: each bulk attempt on that id consumes one.
        self.fail_items: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
        self.cluster_status = "green"
        self._scripts: list[tuple[str, re.Pattern[str], deque[Scripted]]] = []
        self._lock = threading.RLock()
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-es", daemon=True
        )

    # --- lifecycle -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        assert isinstance(host, str)  # an AF_INET server's address
        return f"http://{host}:{port}"

    def start(self) -> FakeElasticsearch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()  # releases delayed responses at once
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeElasticsearch:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- test controls ---------------------------------------------------------------------------
    def script(self, method: str, path: str, *answers: Scripted) -> None:
        """Answer the next requests matching method and path (a regex, fully matched) with `answers`."""
        with self._lock:
            self._scripts.append((method.upper(), re.compile(path), deque(answers)))

    def put_index(self, name: str, mappings: dict[str, Any], settings: dict[str, Any] | None = None) -> None:
        with self._lock:
            self.indices[name] = FakeIndex(mappings=_with_server_defaults(mappings), settings=settings or {})

    def calls(self, method: str, path: str) -> list[RecordedRequest]:
        """Recorded requests with this method whose path fully matches the regex `path`."""
        pattern = re.compile(path)
        with self._lock:
            return [r for r in self.requests if r.method == method and pattern.fullmatch(r.path)]

    # --- request handling ------------------------------------------------------------------------
    def handle(self, request: RecordedRequest) -> tuple[int, Any, float]:
        with self._lock:
            self.requests.append(request)
            self._check_headers(request)
            for method, pattern, answers in self._scripts:
                if answers and method == request.method and pattern.fullmatch(request.path):
                    answer = answers.popleft()
                    if answer.status == 0:
                        return (*self._route(request), answer.delay)
                    return answer.status, answer.body, answer.delay
            if self.expected_authorization is not None and (
                request.headers.get("authorization") != self.expected_authorization
            ):
                return 401, error_body(401, "security_exception", "unable to authenticate user"), 0.0
            status, body = self._route(request)
            return status, body, 0.0

    def _check_headers(self, request: RecordedRequest) -> None:
        accept = request.headers.get("accept")
        if accept != COMPAT_JSON:
            self.problems.append(f"{request.method} {request.path}: Accept {accept!r}")
        if request.body:
            wanted = COMPAT_NDJSON if request.path.endswith(("/_bulk", "/_msearch")) else COMPAT_JSON
            if request.headers.get("content-type") != wanted:
                self.problems.append(
                    f"{request.method} {request.path}: Content-Type {request.headers.get('content-type')!r}"
                )

    def _route(self, r: RecordedRequest) -> tuple[int, Any]:
        parts = [unquote(p) for p in r.path.strip("/").split("/") if p]
        if r.method == "GET" and not parts:
            return 200, self._info()
        if parts[:2] == ["_cluster", "health"]:
            return 200, {"cluster_name": "fake", "status": self.cluster_status, "timed_out": False}
        if parts == ["_msearch"] and r.method in ("GET", "POST"):
            return 200, self._msearch(r.ndjson())
        name = parts[0]
        if len(parts) == 1:
            if r.method == "HEAD":
                return (200 if name in self.indices else 404), None
            if r.method == "PUT":
                return self._create(name, r.json() if r.body else {})
            if r.method == "DELETE":
                return (200, {"acknowledged": True}) if self.indices.pop(name, None) else self._missing(name)
        index = self.indices.get(name)
        if index is None:
            return self._missing(name)
        action = parts[1] if len(parts) > 1 else ""
        if action == "_mapping" and r.method == "GET":
            return 200, {name: {"mappings": index.mappings}}
        if action == "_bulk" and r.method in ("POST", "PUT"):
            return 200, self._bulk(name, index, r.ndjson())
        if action == "_doc" and r.method == "GET" and len(parts) == 3:
            return self._get(name, index, parts[2], r.query)
        if action == "_mget":
            return 200, self._mget(name, index, r.json()["ids"])
        if action == "_search":
            body = r.json() if r.body else {}
            if "knn" not in body:
                return 200, self._query_search(name, index, body, r.query)
            return 200, self._search(name, index, body)
        if action == "_count":
            query = (r.json() if r.body else {}).get("query")
            return 200, {"count": len(self._matching(index, query)), "_shards": _shards()}
        if action == "_delete_by_query":
            return 200, self._delete_by_query(index, r.json()["query"])
        if action == "_refresh":
            return 200, {"_shards": _shards()}
        return 400, error_body(400, "illegal_argument_exception", f"fake: no route for {r.method} {r.path}")

    def _info(self) -> dict[str, Any]:
        return {
            "name": "fake-node",
            "cluster_name": "fake",
            "cluster_uuid": "fake-uuid",
            "version": {"number": self.version, "build_flavor": "default", "lucene_version": "9.12.0"},
            "tagline": "You Know, for Search",
        }

    def _missing(self, name: str) -> tuple[int, Any]:
        return 404, error_body(
            404, "index_not_found_exception", f"no such index [{name}]", index=name, index_uuid="_na_"
        )

    def _create(self, name: str, body: dict[str, Any]) -> tuple[int, Any]:
        if name in self.indices:
            existing = self.indices[name]
            return 400, error_body(
                400,
                "resource_already_exists_exception",
                f"index [{name}/{existing.uuid}] already exists",
                index_uuid=existing.uuid,
                index=name,
            )
        self.put_index(name, body.get("mappings", {}), body.get("settings"))
        return 200, {"acknowledged": True, "shards_acknowledged": True, "index": name}

    def _bulk(self, name: str, index: FakeIndex, lines: list[Any]) -> dict[str, Any]:
        items = []
        pairs = iter(lines)
        for action in pairs:
            op, meta = next(iter(action.items()))
            doc_id = str(meta["_id"])
            base: dict[str, Any] = {"_index": name, "_id": doc_id}
            if op == "delete":  # the one action without a source line
                found = index.docs.pop(doc_id, None) is not None
                items.append(
                    {
                        op: base
                        | {
                            "_version": 2,
                            "result": "deleted" if found else "not_found",
                            "_shards": {"total": 1, "successful": 1, "failed": 0},
                            "status": 200 if found else 404,
                        }
                    }
                )
                continue
            source = next(pairs)
            failures = self.fail_items.get(doc_id)
            if failures:
                status, error_type, reason = failures.pop(0)
                items.append({op: base | {"status": status, "error": {"type": error_type, "reason": reason}}})
                continue
            problem = _validate(index.mappings, source)
            if problem is not None:
                error_type, reason = problem
                items.append({op: base | {"status": 400, "error": {"type": error_type, "reason": reason}}})
                continue
            created = doc_id not in index.docs
            index.docs[doc_id] = source
            items.append(
                {
                    op: base
                    | {
                        "_version": 1,
                        "result": "created" if created else "updated",
                        "_shards": {"total": 1, "successful": 1, "failed": 0},
                        "_seq_no": len(index.docs),
                        "_primary_term": 1,
                        "status": 201 if created else 200,
                    }
                }
            )
        return {"took": 3, "errors": any("error" in next(iter(i.values())) for i in items), "items": items}

    def _get(self, name: str, index: FakeIndex, doc_id: str, query: dict[str, str]) -> tuple[int, Any]:
        if "_source_exclude_vectors" in query and _major_minor(self.version) < (9, 2):
            return 400, error_body(
                400,
                "illegal_argument_exception",
                f"request [/{name}/_doc/{doc_id}] contains unrecognized parameter: [_source_exclude_vectors]",
            )
        source = index.docs.get(doc_id)
        if source is None:
            return 404, {"_index": name, "_id": doc_id, "found": False}
        if self.exclude_source_vectors and query.get("_source_exclude_vectors") != "false":
            source = {k: v for k, v in source.items() if not _is_vector(index.mappings, k)}
        return 200, {
            "_index": name,
            "_id": doc_id,
            "_version": 1,
            "_seq_no": 0,
            "_primary_term": 1,
            "found": True,
            "_source": source,
        }

    def _search(self, name: str, index: FakeIndex, body: dict[str, Any]) -> dict[str, Any]:
        knn = body["knn"]
        field_name = knn["field"]
        field_mapping = index.mappings["properties"][field_name]
        query = np.asarray(knn["query_vector"], dtype=np.float64)
        candidates = self._matching(index, {"bool": {"filter": _as_list(knn.get("filter"))}})
        scored = []
        for doc_id, source in candidates:
            vector = np.asarray(source[field_name], dtype=np.float64)
            similarity = float(query @ vector)
            if field_mapping["similarity"] == "cosine":
                similarity /= float(np.linalg.norm(query) * np.linalg.norm(vector))
            if "similarity" in knn and similarity < knn["similarity"]:
                continue
            scored.append(((1 + similarity) / 2, doc_id, source))  # documented _score for both
        scored.sort(key=lambda t: -t[0])
        scored = scored[: min(knn["k"], body.get("size", 10))]
        return {
            "took": 2,
            "timed_out": False,
            "_shards": _shards(),
            "hits": {
                "total": {"value": len(scored), "relation": "eq"},
                "max_score": scored[0][0] if scored else None,
                "hits": [
                    {
                        "_index": name,
                        "_id": i,
                        "_score": s,
                        "_source": _filter_source(src, body.get("_source")),
                    }
                    for s, i, src in scored
                ],
            },
        }

    def _msearch(self, lines: list[Any]) -> dict[str, Any]:
        """Header and body pairs, each answered as its own _search (knn or query) would be."""
        responses = []
        for header, body in zip(lines[::2], lines[1::2], strict=True):
            name = header["index"]
            index = self.indices.get(name)
            if index is None:
                status, error = self._missing(name)
                responses.append(error | {"status": status})
                continue
            answer = (
                self._search(name, index, body)
                if "knn" in body
                else self._query_search(name, index, body, {})
            )
            responses.append(answer | {"status": 200})
        return {"took": 2, "responses": responses}

    def _mget(self, name: str, index: FakeIndex, ids: list[str]) -> dict[str, Any]:
        docs = []
        for doc_id in ids:
            source = index.docs.get(doc_id)
            base = {"_index": name, "_id": doc_id, "found": source is not None}
            docs.append(base | ({"_version": 1, "_source": source} if source is not None else {}))
        return {"docs": docs}

    def _query_search(
        self, name: str, index: FakeIndex, body: dict[str, Any], params: dict[str, str]
    ) -> dict[str, Any]:
        """A search without knn: `query` filters, `sort` orders, `from`/`size` page, and a `terms`
        aggregation counts documents per value (buckets by count, then key, as documented)."""
        matched = self._matching(index, body.get("query"))
        for spec in reversed(body.get("sort", [])):
            ((field_name, order),) = spec.items() if isinstance(spec, dict) else ((spec, "asc"),)
            order = order["order"] if isinstance(order, dict) else order
            matched.sort(key=lambda pair, f=field_name: pair[1].get(f), reverse=order == "desc")
        start = int(body.get("from", params.get("from", 0)))
        size = int(body.get("size", params.get("size", 10)))
        result: dict[str, Any] = {
            "took": 1,
            "timed_out": False,
            "_shards": _shards(),
            "hits": {
                "total": {"value": len(matched), "relation": "eq"},
                "max_score": None,
                "hits": [
                    {"_index": name, "_id": i, "_score": None, "_source": src}
                    for i, src in matched[start : start + size]
                ],
            },
        }
        if "aggs" in body:
            result["aggregations"] = {}
            for agg_name, agg in body["aggs"].items():
                field_name, agg_size = agg["terms"]["field"], agg["terms"].get("size", 10)
                counts: dict[Any, int] = defaultdict(int)
                for _, src in matched:
                    counts[src.get(field_name)] += 1
                buckets = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:agg_size]
                result["aggregations"][agg_name] = {
                    "doc_count_error_upper_bound": 0,
                    "sum_other_doc_count": sum(counts.values()) - sum(c for _, c in buckets),
                    "buckets": [{"key": k, "doc_count": c} for k, c in buckets],
                }
        return result

    def _delete_by_query(self, index: FakeIndex, query: dict[str, Any]) -> dict[str, Any]:
        doomed = [doc_id for doc_id, _ in self._matching(index, query)]
        for doc_id in doomed:
            del index.docs[doc_id]
        return {
            "took": 5,
            "timed_out": False,
            "total": len(doomed),
            "deleted": len(doomed),
            "batches": 1,
            "version_conflicts": 0,
            "noops": 0,
            "retries": {"bulk": 0, "search": 0},
            "throttled_millis": 0,
            "requests_per_second": -1.0,
            "throttled_until_millis": 0,
            "failures": [],
        }

    def _matching(self, index: FakeIndex, query: dict[str, Any] | None) -> list[tuple[str, dict[str, Any]]]:
        return [(i, src) for i, src in index.docs.items() if _matches(src, query)]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as urllib3 expects from Elasticsearch

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        fake: FakeElasticsearch = self.server.fake  # type: ignore[attr-defined]
        if fake._closing.is_set():
            self.close_connection = True  # a stopped server drops kept-alive connections too
            return
        split = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        request = RecordedRequest(
            method=self.command,
            path=split.path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        status, payload, delay = fake.handle(request)
        if delay and fake._closing.wait(delay):
            return
        data = b"" if payload is None else json.dumps(payload).encode()
        try:
            self.send_response(status)
            if fake.product_header:
                self.send_header("X-Elastic-Product", "Elasticsearch")
            self.send_header("Content-Type", RESPONSE_CONTENT_TYPE)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout): nothing to answer

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve  # noqa: N815 - http.server's naming


# --- emulation helpers --------------------------------------------------------------------------------
def _shards() -> dict[str, int]:
    return {"total": 1, "successful": 1, "skipped": 0, "failed": 0}


def _major_minor(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _matches(source: dict[str, Any], query: dict[str, Any] | None) -> bool:
    if not query or "match_all" in query:
        return True
    if "bool" in query:
        return all(_matches(source, q) for q in _as_list(query["bool"].get("filter")))
    if "term" in query:
        ((name, value),) = query["term"].items()
        value = value["value"] if isinstance(value, dict) else value
        return source.get(name) == value
    if "terms" in query:
        ((name, values),) = query["terms"].items()
        return source.get(name) in values
    raise ValueError(f"fake Elasticsearch: unsupported query {query}")


def _is_vector(mappings: dict[str, Any], name: str) -> bool:
    return mappings.get("properties", {}).get(name, {}).get("type") == "dense_vector"


def _filter_source(source: dict[str, Any], spec: Any) -> dict[str, Any]:
    if spec is None or spec is True:
        return dict(source)
    if isinstance(spec, list):
        return {k: v for k, v in source.items() if k in spec}
    includes, excludes = spec.get("includes"), spec.get("excludes", [])
    return {k: v for k, v in source.items() if (includes is None or k in includes) and k not in excludes}


def _validate(mappings: dict[str, Any], source: dict[str, Any]) -> tuple[str, str] | None:
    """The document checks of a strict mapping with a dense_vector, as Elasticsearch reports them."""
    properties = mappings.get("properties", {})
    for name, value in source.items():
        if name not in properties:
            if mappings.get("dynamic") == "strict":
                return (
                    "strict_dynamic_mapping_exception",
                    f"[1:2] mapping set to strict, dynamic introduction of [{name}] within [_doc] "
                    "is not allowed",
                )
            continue
        spec = properties[name]
        if spec.get("type") == "dense_vector" and len(value) != spec["dims"]:
            return (
                "document_parsing_exception",
                f"[1:2] The [dense_vector] field [{name}] in doc [document with id] has a different number "
                f"of dimensions [{len(value)}] than defined in the mapping [{spec['dims']}]",
            )
    return None


def _with_server_defaults(mappings: dict[str, Any]) -> dict[str, Any]:
    """What GET _mapping shows: the server fills in dense_vector defaults (and 9.1+ bbq rescoring)."""
    result = json.loads(json.dumps(mappings))
    for spec in result.get("properties", {}).values():
        if spec.get("type") == "dense_vector":
            spec.setdefault("index", True)
            options = spec.get("index_options")
            if options is not None:
                options.setdefault("m", 16)
                options.setdefault("ef_construction", 100)
                if options.get("type") == "bbq_hnsw":
                    options.setdefault("rescore_vector", {"oversample": 3.0})
    return result
