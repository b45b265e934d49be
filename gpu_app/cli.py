"""`python -m gpu_app serve | index <folder> | search <image> | reindex | people ...`

Settings come from the environment.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from contract.media import IMAGE_SUFFIXES
from gpu_app.config import Settings


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from gpu_app.main import create_app

    host, port = args.host or settings.host, args.port or settings.port
    print(f"Face embedding API on http://{host}:{port}  (docs: http://{host}:{port}/docs)", flush=True)
    print(f"  model pack {settings.model_pack} from {settings.model_root_path}", flush=True)
    print(f"  curl -F files=@photo.jpg http://{host}:{port}/upload-images/", flush=True)
    print(f"  curl -F file=@photo.jpg http://{host}:{port}/search", flush=True)
    uvicorn.run(create_app(settings), host=host, port=port, log_level=args.log_level)
    return 0


def cmd_index(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from gpu_app.assembly import build_service

    folder: Path = args.folder
    if not folder.is_dir():
        print(f"error: {folder} is not a folder", file=sys.stderr)
        return 2
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        print(f"error: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {folder}", file=sys.stderr)
        return 2
    service = build_service(settings)
    errors: dict[str, str] = {}
    faces = 0
    try:
        with tqdm(total=len(paths), unit="img", desc="indexing") as bar:
            for start in range(0, len(paths), args.batch):
                chunk = paths[start : start + args.batch]
                outcomes = service.process_uploads([(p.name, p.read_bytes()) for p in chunk], args.collection)
                for path, outcome in zip(chunk, outcomes, strict=True):
                    if outcome.error:
                        errors[str(path)] = outcome.error.reason
                    faces += len(outcome.faces)
                bar.update(len(chunk))
                bar.set_postfix(faces=faces, errors=len(errors))
    finally:
        service.index.close()
        service.close()
    print(f"indexed {len(paths) - len(errors)} of {len(paths)} images, {faces} faces")
    for failed, reason in errors.items():
        print(f"  failed: {failed}: {reason}", file=sys.stderr)
    return 1 if errors else 0


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    from gpu_app.assembly import build_service
    from gpu_app.imaging import ImageDecodeError

    service = build_service(settings)
    try:
        queries = service.search_image(
            args.image.read_bytes(), k=args.k, threshold=args.threshold, mode=args.faces
        )
    except ImageDecodeError as exc:
        print(f"error: {args.image}: {exc.reason}", file=sys.stderr)
        return 2
    finally:
        service.index.close()
        service.close()
    result = [
        {
            "bbox": [round(v, 1) for v in q.bbox],
            "matches": [
                {"similarity": round(h.similarity, 4), "face_id": h.face_id, "storage_key": h.storage_key}
                for h in q.matches
            ],
        }
        for q in queries
    ]
    print(json.dumps(result, indent=2))
    return 0


def cmd_reindex(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from gpu_app.index import build_index
    from gpu_app.reindex import reindex
    from gpu_app.storage import build_storage

    target = args.target or settings.vector_index
    if args.fresh and target == "embedded":
        from gpu_app.index.embedded import IndexInUseError, drop_index_files

        try:
            drop_index_files(settings.index_dir)
        except IndexInUseError as exc:
            print(f"error: refusing --fresh: {exc} (`reindex` without --fresh upserts)", file=sys.stderr)
            return 2
    index = build_index(settings, target)
    with tqdm(unit="sidecar", desc=f"reindex -> {target}") as bar:

        def advance(sidecars: int) -> None:
            bar.update(sidecars)

        stats = reindex(
            build_storage(settings), settings.s3_upload_path, index, settings.model_pack, progress=advance
        )
    index.close()
    print(
        f"reindexed {stats['faces']} faces of {stats['images']} images into {target} "
        f"({stats['skipped_other_pack']} sidecars of other model packs skipped)"
    )
    for key, reason in stats["errors"].items():
        print(f"  failed: {key}: {reason}", file=sys.stderr)
    return 1 if stats["errors"] else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gpu_app", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host", help="default: HOST or 127.0.0.1")
    serve.add_argument("--port", type=int, help="default: PORT or 8000")
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(func=cmd_serve)

    index = sub.add_parser("index", help="store, embed and index every image under a folder")
    index.add_argument("folder", type=Path)
    index.add_argument("--collection", default="default")
    index.add_argument("--batch", type=int, default=16, help="images per model batch")
    index.set_defaults(func=cmd_index)

    search = sub.add_parser("search", help="find the faces of an image in the index")
    search.add_argument("image", type=Path)
    search.add_argument("-k", type=int, default=5)
    search.add_argument("--threshold", type=float, default=None)
    search.add_argument("--faces", choices=["all", "largest"], default="all")
    search.set_defaults(func=cmd_search)

    rebuild = sub.add_parser("reindex", help="rebuild the vector index from stored sidecars")
    rebuild.add_argument("--target", choices=["embedded", "elasticsearch"], default=None)
    rebuild.add_argument("--fresh", action="store_true", help="drop the embedded index files first")
    rebuild.set_defaults(func=cmd_reindex)

    from gpu_app.people.cli import add_people_parser

    add_people_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # its AVX probing is noise
    return int(args.func(args, Settings()))
