"""The production vector index: Elasticsearch 8.x / 9.x through the official `elasticsearch` client.

The client is an 8.x release on purpose: it sends `compatible-with=8` media types, which both 8.x
and 9.x clusters accept (a 9.x client's `compatible-with=9` is refused by 8.x). Minimum cluster
version: 8.12 (int8_hnsw; int4_hnsw needs 8.15, bbq_hnsw 8.16).

Scores: vectors are L2-normalised, so the field uses `dot_product` (or `cosine`, same scale), for
which Elasticsearch documents `_score = (1 + cos) / 2`. The knn `similarity` parameter is a *raw
similarity* (a cosine here), not a score, so the caller's cosine threshold is passed unchanged and
every `_score` is mapped back with `cos = 2 * _score - 1`.

`elasticsearch` is imported lazily: deployments on the embedded index never load it.
"""

from __future__ import annotations

import logging
import math
import random
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from pydantic import SecretStr

from gpu_app.config import MAX_NUM_CANDIDATES, ElasticsearchSettings
from gpu_app.index.base import (
    DEFAULT_COLLECTION,
    FaceRecord,
    IndexHealth,
    IndexMismatchError,
    IndexUnavailableError,
    IndexWriteError,
    SearchFilters,
    SearchHit,
    VectorIndexError,
    check_record,
)

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

log = logging.getLogger(__name__)

T = TypeVar("T")

VECTOR_FIELD = "embedding"
SCHEMA_VERSION = 1
# Transient statuses: rejected execution, bad gateway, unavailable shards/cluster, gateway timeout.
RETRY_STATUSES = (429, 502, 503, 504)
MAX_CHUNK_BYTES = 20 * 1024 * 1024  # well below http.max_content_length (100 MB)
HEALTH_TIMEOUT = 5.0  # seconds: /health must answer even when the cluster hangs
META_FIELDS = (
    "face_id",
    "image_id",
    "storage_key",
    "model_pack",
    "collection",
    "det_score",
    "bbox",
    "created_at",
)


@dataclass(frozen=True, slots=True)
class Credentials:
    """Resolved authentication: at most one of api_key and username/password."""

    api_key: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    cloud_id: str | None = None


def resolve_credentials(settings: ElasticsearchSettings) -> Credentials:
    """The configured credentials, completed from ES_SECRET_NAME; the environment wins field by field."""
    secret: dict[str, Any] = {}
    if settings.es_secret_name:
        secret = _read_secret_json(settings.es_secret_name, settings.aws_region)
    api_key = settings.es_api_key or _secret_str(secret.get("api_key"))
    username = settings.es_username or secret.get("username")
    password = settings.es_password or _secret_str(secret.get("password"))
    cloud_id = settings.es_cloud_id or secret.get("cloud_id")
    if api_key and (username or password):
        raise ValueError("configure either an API key or a username/password for Elasticsearch, not both")
    if bool(username) != bool(password):
        raise ValueError("Elasticsearch basic auth needs both a username and a password")
    return Credentials(
        api_key=api_key,
        username=str(username) if username else None,
        password=password,
        cloud_id=str(cloud_id) if cloud_id else None,
    )


def _secret_str(value: Any) -> SecretStr | None:
    return SecretStr(str(value)) if value else None


def _read_secret_json(name: str, region: str | None) -> dict[str, Any]:
    import json

    from gpu_app.secret_store import fetch_secret

    raw = fetch_secret(name, region)
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        # Never echo the content: it is a secret even when malformed.
        raise ValueError(f"secret {name!r} must hold a JSON object with api_key or username/password")
    return value


def build_client(settings: ElasticsearchSettings, credentials: Credentials | None = None) -> Elasticsearch:
    """An `Elasticsearch` client whose own retries are off: this module retries with backoff."""
    from elasticsearch import Elasticsearch

    creds = credentials if credentials is not None else resolve_credentials(settings)
    if bool(settings.hosts) == bool(creds.cloud_id):
        raise ValueError("configure exactly one of ES_HOSTS and ES_CLOUD_ID")
    kwargs: dict[str, Any] = {
        "request_timeout": settings.es_request_timeout,
        "max_retries": 0,
        "retry_on_timeout": False,
        "retry_on_status": (),
        "verify_certs": settings.es_verify_certs,
    }
    if creds.cloud_id:
        kwargs["cloud_id"] = creds.cloud_id
    else:
        kwargs["hosts"] = settings.hosts
    if settings.es_ca_certs is not None:
        kwargs["ca_certs"] = str(settings.es_ca_certs)
    if creds.api_key is not None:
        key = creds.api_key.get_secret_value()
        # `id:api_key` is the raw pair; anything else is the already encoded form (base64 has no ':').
        kwargs["api_key"] = tuple(key.split(":", 1)) if ":" in key else key
    elif creds.username and creds.password is not None:
        kwargs["basic_auth"] = (creds.username, creds.password.get_secret_value())
    return Elasticsearch(**kwargs)


def index_body(settings: ElasticsearchSettings, embedding_dim: int, model_pack: str) -> dict[str, Any]:
    """The create-index request: explicit mapping, never the server's defaults."""
    index_settings: dict[str, Any] = {}
    if settings.es_shards is not None:
        index_settings["number_of_shards"] = settings.es_shards
    if settings.es_replicas is not None:
        index_settings["number_of_replicas"] = settings.es_replicas
    body: dict[str, Any] = {
        "mappings": {
            "dynamic": "strict",
            "_meta": {
                "model_pack": model_pack,
                "embedding_dim": embedding_dim,
                "schema_version": SCHEMA_VERSION,
            },
            "properties": {
                "face_id": {"type": "keyword"},
                "image_id": {"type": "keyword"},
                "storage_key": {"type": "keyword"},
                "model_pack": {"type": "keyword"},
                "collection": {"type": "keyword"},
                "det_score": {"type": "float"},
                "bbox": {"type": "float", "index": False},
                "created_at": {"type": "date"},
                VECTOR_FIELD: {
                    "type": "dense_vector",
                    "element_type": "float",
                    "dims": embedding_dim,
                    "index": True,
                    "similarity": settings.es_similarity,
                    "index_options": {
                        "type": settings.es_index_options_type,
                        "m": settings.es_hnsw_m,
                        "ef_construction": settings.es_hnsw_ef_construction,
                    },
                },
            },
        }
    }
    if index_settings:
        body["settings"] = {"index": index_settings}
    return body


def score_to_cosine(score: float) -> float:
    """Inverse of Elasticsearch's `_score = (1 + cos) / 2` for dot_product and cosine fields."""
    return max(-1.0, min(1.0, 2.0 * float(score) - 1.0))


class ElasticsearchIndex:
    """`VectorIndex` on Elasticsearch: one document per face, `_id` = face_id (upserts never duplicate)."""

    backend = "elasticsearch"

    def __init__(self, settings: ElasticsearchSettings, client: Elasticsearch | None = None) -> None:
        self.settings = settings
        self.index_name = settings.index_name
        self._owns_client = client is None
        self._client = client if client is not None else build_client(settings)
        self.dim = 0
        self.model_pack = ""

    # --- lifecycle -------------------------------------------------------------------------
    def open(self, embedding_dim: int, model_pack: str) -> None:
        if embedding_dim < 1 or not model_pack:
            raise ValueError("open() needs a positive embedding dimension and a model pack name")
        options_type = self.settings.es_index_options_type
        if options_type == "int4_hnsw" and embedding_dim % 2:
            raise ValueError(f"int4_hnsw needs an even number of dimensions, the model has {embedding_dim}")
        if options_type == "bbq_hnsw" and embedding_dim <= 64:
            raise ValueError(f"bbq_hnsw needs more than 64 dimensions, the model has {embedding_dim}")

        if not self._call("check index", lambda: bool(self._client.indices.exists(index=self.index_name))):
            self._call("create index", lambda: self._create(embedding_dim, model_pack))
        mappings = self._call("read mapping", self._mappings)
        problems, warnings = _compare_mapping(mappings, self.settings, embedding_dim, model_pack)
        if problems:
            raise IndexMismatchError(
                f"Elasticsearch index {self.index_name!r} does not fit {embedding_dim}-d vectors of model "
                f"pack {model_pack!r}: {'; '.join(problems)}. Use another INDEX_NAME or rebuild it "
                "with `python -m gpu_app reindex --target elasticsearch`"
            )
        for warning in warnings:
            log.warning("Elasticsearch index %s: %s", self.index_name, warning)
        self.dim, self.model_pack = embedding_dim, model_pack

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def _create(self, embedding_dim: int, model_pack: str) -> None:
        from elasticsearch import BadRequestError

        try:
            self._client.indices.create(
                index=self.index_name, **index_body(self.settings, embedding_dim, model_pack)
            )
            log.info(
                "created Elasticsearch index %s (%d-d, %s, %s)",
                self.index_name,
                embedding_dim,
                self.settings.es_similarity,
                self.settings.es_index_options_type,
            )
        except BadRequestError as exc:
            # Another instance created it between our check and our create: verified by the caller.
            if _error_type(exc) != "resource_already_exists_exception":
                raise
            log.info("Elasticsearch index %s was created concurrently", self.index_name)

    def _mappings(self, client: Elasticsearch | None = None) -> dict[str, dict[str, Any]]:
        """Mappings per concrete index (the name may be an alias)."""
        response = (client or self._client).indices.get_mapping(index=self.index_name)
        return {name: value.get("mappings", {}) for name, value in response.body.items()}

    # --- writes ----------------------------------------------------------------------------
    def add(self, records: Sequence[FaceRecord]) -> None:
        """Bulk upsert in chunks of ES_CHUNK_SIZE; safe to call with any number of records.

        429/5xx (whole request or per document) are retried by the bulk helper with backoff;
        connection failures and timeouts are retried here for the documents without a result.
        """
        self._require_open()
        if not records:
            return
        for record in records:
            check_record(record, self.dim, self.model_pack, f"index {self.index_name!r}")

        from elastic_transport import ConnectionError, ConnectionTimeout, TlsError
        from elasticsearch.helpers import streaming_bulk

        pending: dict[str, FaceRecord] = {r.face_id: r for r in records}  # a repeated face_id: last wins
        failures: dict[str, str] = {}
        total, done = len(pending), 0
        s = self.settings
        for attempt in range(s.es_max_retries + 1):
            try:
                results = streaming_bulk(
                    self._client,
                    self._actions(list(pending.values())),
                    index=self.index_name,
                    chunk_size=s.es_chunk_size,
                    max_chunk_bytes=MAX_CHUNK_BYTES,
                    raise_on_error=False,
                    raise_on_exception=False,
                    max_retries=s.es_max_retries,
                    initial_backoff=s.es_retry_backoff,
                    max_backoff=s.es_retry_max_backoff,
                    retry_on_status=RETRY_STATUSES,
                    refresh=s.refresh,
                )
                for ok, item in results:
                    info = next(iter(item.values()))
                    face_id = str(info.get("_id"))
                    if ok:
                        pending.pop(face_id, None)
                        done += 1
                        if done % s.es_chunk_size == 0:
                            log.debug("bulk %s: %d/%d face vectors written", self.index_name, done, total)
                        continue
                    outage = _request_level_outage(info)
                    if outage:
                        # The cluster refuses whole requests: stop rather than fail chunk after chunk.
                        raise IndexUnavailableError(
                            f"Elasticsearch bulk write to {self.index_name!r} failed ({outage}); "
                            f"{total - done} of {total} face vector(s) not confirmed written"
                        )
                    pending.pop(face_id, None)
                    failures[face_id] = _describe_item_error(info)
                break
            except TlsError as exc:
                raise IndexUnavailableError("TLS connection to Elasticsearch failed") from exc
            except (ConnectionError, ConnectionTimeout) as exc:
                # Documents without a result are sent again: index by _id is idempotent.
                if attempt == s.es_max_retries:
                    raise IndexUnavailableError(
                        f"Elasticsearch unreachable after {attempt + 1} attempt(s) ({type(exc).__name__}); "
                        f"{total - done} of {total} face vector(s) not confirmed written"
                    ) from exc
                log.warning(
                    "Elasticsearch bulk: %s; retry %d of %d",
                    type(exc).__name__,
                    attempt + 1,
                    s.es_max_retries,
                )
                self._sleep(attempt)
        if failures:
            raise IndexWriteError(failures)

    def _actions(self, records: Sequence[FaceRecord]) -> Iterator[dict[str, Any]]:
        for r in records:
            source: dict[str, Any] = {
                "face_id": r.face_id,
                "image_id": r.image_id,
                "storage_key": r.storage_key,
                "model_pack": r.model_pack,
                "collection": r.collection,
                "det_score": float(r.det_score),
                "bbox": [float(v) for v in r.bbox],
                VECTOR_FIELD: np.asarray(r.embedding, dtype=np.float32).tolist(),
            }
            if r.created_at:  # an empty string is not a date: leave the field out
                source["created_at"] = r.created_at
            yield {"_op_type": "index", "_id": r.face_id, "_source": source}

    def delete_image(self, image_id: str) -> int:
        self._require_open()
        if self.settings.refresh is False:
            # delete_by_query only sees refreshed documents: make this image's recent writes visible.
            self._call("refresh", self._refresh_quietly)
        response = self._call(
            "delete image",
            lambda: self._client.delete_by_query(
                index=self.index_name,
                query={"term": {"image_id": image_id}},
                conflicts="proceed",
                refresh=self.settings.refresh is not False,
            ),
        )
        if response.get("failures"):
            raise IndexUnavailableError(
                f"delete of image {image_id!r} incomplete: "
                f"{len(response['failures'])} failure(s) in Elasticsearch"
            )
        return int(response.get("deleted", 0))

    def _refresh_quietly(self) -> None:
        from elasticsearch import AuthorizationException

        try:
            self._client.indices.refresh(index=self.index_name)
        except AuthorizationException:
            log.warning(
                "no privilege to refresh %s: faces written in the last second may survive a delete",
                self.index_name,
            )

    # --- reads -----------------------------------------------------------------------------
    def search(
        self,
        query: np.ndarray,
        k: int,
        threshold: float,
        filters: SearchFilters | None = None,
    ) -> list[SearchHit]:
        self._require_open()
        request = self._knn_request(query, k, threshold, filters)
        if request is None:
            return []
        response = self._call(
            "search",
            lambda: self._client.search(
                index=self.index_name,
                knn=request["knn"],
                size=request["size"],
                # Elasticsearch takes a list of fields as _source; the client's annotation omits it.
                source=request["_source"],
                allow_partial_search_results=False,
            ),
        )
        return _hits(response)

    def search_many(
        self,
        queries: np.ndarray,
        k: int,
        threshold: float,
        filters: SearchFilters | None = None,
    ) -> list[list[SearchHit]]:
        """`search` of each row of `queries` in one _msearch: one round trip for a request's faces,
        not one per face. A search the cluster failed alone is asked again by itself (`search`,
        with its retries and its errors)."""
        self._require_open()
        requests = [self._knn_request(query, k, threshold, filters) for query in queries]
        asked = [request for request in requests if request is not None]
        if not asked:
            return [[] for _ in requests]
        header = {"index": self.index_name, "allow_partial_search_results": False}
        response = self._call(
            "search",
            lambda: self._client.msearch(searches=[line for r in asked for line in (header, r)]),
        )
        answers = iter(response["responses"])
        results: list[list[SearchHit]] = []
        for query, request in zip(queries, requests, strict=True):
            if request is None:
                results.append([])
                continue
            answer = next(answers)
            failed = "error" in answer
            results.append(self.search(query, k, threshold, filters) if failed else _hits(answer))
        return results

    def _knn_request(
        self, query: np.ndarray, k: int, threshold: float, filters: SearchFilters | None
    ) -> dict[str, Any] | None:
        """The body of one kNN search (None: nothing to ask, k < 1); raises for a query that is no
        vector of this index."""
        vector = np.asarray(query, dtype=np.float32).reshape(-1)
        if vector.shape[0] != self.dim:
            raise IndexMismatchError(f"query has {vector.shape[0]} dimensions, the index {self.dim}")
        norm = float(np.linalg.norm(vector))
        if not math.isfinite(norm) or norm == 0.0:
            raise ValueError("query vector must be finite and non-zero")
        if k < 1:
            return None
        k = min(int(k), MAX_NUM_CANDIDATES)
        knn: dict[str, Any] = {
            "field": VECTOR_FIELD,
            # dot_product requires unit length; re-normalising absorbs float32 rounding upstream.
            "query_vector": (vector / norm).tolist(),
            "k": k,
            "num_candidates": self.settings.num_candidates(k),
            # A raw similarity (cosine), not a score: see the module docstring.
            "similarity": max(-1.0, min(1.0, float(threshold))),
        }
        clauses = _filter_clauses(filters)
        if clauses:
            knn["filter"] = clauses
        return {"knn": knn, "size": k, "_source": list(META_FIELDS)}

    def get(self, face_id: str) -> FaceRecord | None:
        self._require_open()
        doc = self._call("get", lambda: self._get_doc(face_id, include_vectors=False))
        if doc is None:
            return None
        source = doc.get("_source", {})
        if VECTOR_FIELD not in source:
            # 9.2+ keeps vectors out of _source by default and only returns them when asked. Older
            # clusters reject that parameter, but they always return the vector in the first place.
            doc = self._call("get", lambda: self._get_doc(face_id, include_vectors=True))
            if doc is None:
                return None
            source = doc.get("_source", {})
        return FaceRecord(
            face_id=str(source.get("face_id", face_id)),
            image_id=str(source["image_id"]),
            storage_key=str(source["storage_key"]),
            model_pack=str(source["model_pack"]),
            det_score=float(source["det_score"]),
            bbox=_bbox(source.get("bbox")),
            embedding=np.asarray(source[VECTOR_FIELD], dtype=np.float32),
            collection=str(source.get("collection", DEFAULT_COLLECTION)),
            created_at=str(source.get("created_at", "")),
        )

    def _get_doc(self, face_id: str, include_vectors: bool) -> dict[str, Any] | None:
        from elasticsearch import NotFoundError

        path = f"/{urllib.parse.quote(self.index_name, safe='')}/_doc/{urllib.parse.quote(face_id, safe='')}"
        params = {"_source_exclude_vectors": "false"} if include_vectors else None
        try:
            response = self._client.perform_request(
                "GET", path, params=params, headers={"accept": "application/json"}
            )
        except NotFoundError as exc:
            if isinstance(exc.body, dict) and exc.body.get("found") is False:
                return None
            raise IndexUnavailableError(f"Elasticsearch index {self.index_name!r} is missing") from exc
        return dict(response.body)

    def count(self, filters: SearchFilters | None = None) -> int:
        self._require_open()
        return self._count(filters, self._client)

    def _count(self, filters: SearchFilters | None, client: Elasticsearch, retries: int | None = None) -> int:
        clauses = _filter_clauses(filters)
        query = {"bool": {"filter": clauses}} if clauses else None
        response = self._call("count", lambda: client.count(index=self.index_name, query=query), retries)
        return int(response["count"])

    def health(self) -> IndexHealth:
        """Never raises, never waits long: reachable, index present, mapping as this service expects."""
        client = self._client.options(request_timeout=min(HEALTH_TIMEOUT, self.settings.es_request_timeout))
        detail: dict[str, Any] = {"index": self.index_name}
        try:
            exists = self._call(
                "check index", lambda: bool(client.indices.exists(index=self.index_name)), retries=0
            )
            detail["exists"] = exists
            if not exists:
                return IndexHealth(ok=False, backend=self.backend, detail=detail | {"error": "index missing"})
            mappings = self._call("read mapping", lambda: self._mappings(client), retries=0)
            meta = next(iter(mappings.values()), {}).get("_meta") or {}
            dim = self.dim or int(meta.get("embedding_dim") or 0)
            pack = self.model_pack or str(meta.get("model_pack") or "")
            problems, warnings = _compare_mapping(mappings, self.settings, dim, pack)
            detail.update(
                model_pack=pack,
                dim=dim,
                similarity=self.settings.es_similarity,
                index_options=self.settings.es_index_options_type,
                mapping_ok=not (problems or warnings),
            )
            if problems or warnings:
                detail["mapping_problems"] = problems + warnings
            detail["cluster_status"] = self._cluster_status(client)
            count = self._count(None, client, retries=0)
        except (VectorIndexError, ValueError) as exc:
            return IndexHealth(ok=False, backend=self.backend, detail=detail | {"error": str(exc)})
        ok = bool(detail["mapping_ok"]) and detail["cluster_status"] != "red"
        return IndexHealth(ok=ok, backend=self.backend, count=count, detail=detail)

    def _cluster_status(self, client: Elasticsearch) -> str | None:
        """green/yellow/red for this index; None when the credentials lack the `monitor` privilege."""
        from elasticsearch import AuthorizationException

        try:
            response = self._call(
                "cluster health", lambda: client.cluster.health(index=self.index_name), retries=0
            )
        except VectorIndexError as exc:
            if isinstance(exc.__cause__, AuthorizationException):
                return None
            raise
        return str(response.get("status"))

    # --- internals -------------------------------------------------------------------------
    def _require_open(self) -> None:
        if not self.dim:
            raise IndexUnavailableError("Elasticsearch index is not open: call open(dim, model_pack) first")

    def _sleep(self, attempt: int) -> None:
        s = self.settings
        delay = min(s.es_retry_max_backoff, s.es_retry_backoff * 2**attempt)
        time.sleep(delay * random.uniform(0.5, 1.0))  # jitter: instances must not retry in lockstep

    def _call(self, what: str, fn: Callable[[], T], retries: int | None = None) -> T:
        """Run one request, retrying transient failures with bounded, jittered exponential backoff.

        Raises IndexUnavailableError when the cluster stays unreachable or refuses the credentials,
        VectorIndexError for any other error answer. Messages never carry credentials.
        """
        from elastic_transport import ConnectionError, ConnectionTimeout, TlsError
        from elasticsearch import (
            ApiError,
            AuthenticationException,
            AuthorizationException,
            UnsupportedProductError,
        )

        attempts = (self.settings.es_max_retries if retries is None else retries) + 1
        for attempt in range(attempts):
            try:
                return fn()
            except UnsupportedProductError as exc:
                raise IndexUnavailableError(
                    f"{what}: the server at ES_HOSTS is not Elasticsearch (no X-Elastic-Product header)"
                ) from exc
            except (AuthenticationException, AuthorizationException) as exc:
                raise IndexUnavailableError(
                    f"{what}: Elasticsearch refused the credentials "
                    f"(HTTP {exc.status_code} {_error_type(exc)})"
                ) from exc
            except ApiError as exc:
                if exc.status_code not in RETRY_STATUSES:
                    raise VectorIndexError(
                        f"{what} on {self.index_name!r} failed: HTTP {exc.status_code} {_error_reason(exc)}"
                    ) from exc
                reason = f"HTTP {exc.status_code} {_error_type(exc)}"
                last: Exception = exc
            except TlsError as exc:
                raise IndexUnavailableError(f"{what}: TLS connection to Elasticsearch failed") from exc
            except (ConnectionError, ConnectionTimeout) as exc:
                reason, last = type(exc).__name__, exc
            if attempt + 1 < attempts:
                log.warning("Elasticsearch %s: %s; retry %d of %d", what, reason, attempt + 1, attempts - 1)
                self._sleep(attempt)
        raise IndexUnavailableError(
            f"{what}: Elasticsearch unavailable after {attempts} attempt(s) ({reason})"
        ) from last


# --- helpers ---------------------------------------------------------------------------------------
def _filter_clauses(filters: SearchFilters | None) -> list[dict[str, Any]]:
    if filters is None:
        return []
    return [
        {"term": {name: value}}
        for name in ("collection", "image_id", "model_pack")
        if (value := getattr(filters, name)) is not None
    ]


def _hits(response: Any) -> list[SearchHit]:
    """The hits of one kNN search answer, best first."""
    hits = []
    for hit in response["hits"]["hits"]:
        src = hit.get("_source", {})
        hits.append(
            SearchHit(
                face_id=str(src.get("face_id", hit["_id"])),
                image_id=str(src.get("image_id", "")),
                storage_key=str(src.get("storage_key", "")),
                collection=str(src.get("collection", DEFAULT_COLLECTION)),
                det_score=float(src.get("det_score", 0.0)),
                bbox=_bbox(src.get("bbox")),
                similarity=score_to_cosine(hit["_score"]),
            )
        )
    return hits


def _bbox(value: Any) -> tuple[float, float, float, float]:
    values = [float(v) for v in (value or (0.0, 0.0, 0.0, 0.0))]
    return (values[0], values[1], values[2], values[3])


def _error_type(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("type", ""))
    return str(getattr(exc, "message", "") or type(exc).__name__)


def _error_reason(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        return f"{error.get('type', '')}: {str(error.get('reason', ''))[:300]}"
    return _error_type(exc)


def _describe_item_error(info: dict[str, Any]) -> str:
    error = info.get("error")
    if isinstance(error, dict):
        return f"HTTP {info.get('status')} {error.get('type', '')}: {str(error.get('reason', ''))[:300]}"
    exception = info.get("exception")
    if exception is not None:
        return f"HTTP {info.get('status')} {_error_reason(exception)}"
    return f"HTTP {info.get('status')} {str(error)[:300]}"


def _request_level_outage(info: dict[str, Any]) -> str | None:
    """Why the whole bulk request (not this document) failed in a way retrying later can fix."""
    from elasticsearch import AuthenticationException, AuthorizationException, UnsupportedProductError

    exception = info.get("exception")
    if exception is None:
        return None
    if isinstance(exception, UnsupportedProductError):
        return "the server is not Elasticsearch"
    if isinstance(exception, AuthenticationException | AuthorizationException):
        return f"credentials refused: HTTP {info.get('status')}"
    if info.get("status") in RETRY_STATUSES:
        return f"HTTP {info.get('status')} {_error_type(exception)} after retries"
    return None


def _compare_mapping(
    mappings: dict[str, dict[str, Any]],
    settings: ElasticsearchSettings,
    embedding_dim: int,
    model_pack: str,
) -> tuple[list[str], list[str]]:
    """(problems that make the index unusable for these vectors, differences worth a warning)."""
    problems: list[str] = []
    warnings: list[str] = []
    if not mappings:
        return ["no mapping found"], warnings
    for name, mapping in mappings.items():
        meta = mapping.get("_meta") or {}
        field = (mapping.get("properties") or {}).get(VECTOR_FIELD) or {}
        if "model_pack" not in meta or "embedding_dim" not in meta:
            problems.append(f"{name}: no model pack in the mapping _meta (not created by this service)")
        else:
            if meta["model_pack"] != model_pack:
                problems.append(f"{name}: built for model pack {meta['model_pack']!r}")
            if int(meta["embedding_dim"]) != embedding_dim:
                problems.append(f"{name}: _meta says {meta['embedding_dim']}-d vectors")
        if field.get("type") != "dense_vector":
            problems.append(f"{name}: field {VECTOR_FIELD!r} is not a dense_vector")
            continue
        if field.get("index") is False:
            problems.append(f"{name}: {VECTOR_FIELD} is not indexed for knn search")
        if field.get("dims") != embedding_dim:
            problems.append(f"{name}: {VECTOR_FIELD} has {field.get('dims')} dimensions")
        if field.get("element_type", "float") != "float":
            problems.append(f"{name}: {VECTOR_FIELD} element_type is {field.get('element_type')}")
        if field.get("similarity") not in ("dot_product", "cosine"):
            # Other similarities score on another scale: thresholds would silently mean something else.
            problems.append(f"{name}: similarity {field.get('similarity')!r} is not dot_product/cosine")
        elif field.get("similarity") != settings.es_similarity:
            warnings.append(
                f"similarity is {field['similarity']}, ES_SIMILARITY says {settings.es_similarity}"
            )
        options = field.get("index_options") or {}
        if options.get("type") != settings.es_index_options_type:
            warnings.append(
                f"index_options type is {options.get('type')}, ES_INDEX_OPTIONS_TYPE says "
                f"{settings.es_index_options_type}"
            )
        for key, wanted in (("m", settings.es_hnsw_m), ("ef_construction", settings.es_hnsw_ef_construction)):
            if key in options and options[key] != wanted:
                warnings.append(f"index_options {key} is {options[key]}, configured {wanted}")
    return problems, warnings
