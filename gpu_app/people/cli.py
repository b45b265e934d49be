"""`python -m gpu_app people list|show|rename|hide|merge|delete|recluster` (settings from the environment)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from gpu_app.config import Settings
from gpu_app.people.base import PeopleConflictError, Person, PersonNotFoundError


def _person_json(person: Person) -> dict[str, Any]:
    return {
        "person_id": person.person_id,
        "collection": person.collection,
        "name": person.name,
        "hidden": person.hidden,
        "face_count": person.face_count,
        "representative_face_id": person.representative_face_id,
    }


def _with_service(
    run: Callable[[Any, argparse.Namespace], Any],
) -> Callable[[argparse.Namespace, Settings], int]:
    """Open the service, run, print the result as JSON; a bad id or request is exit status 2."""

    def command(args: argparse.Namespace, settings: Settings) -> int:
        from gpu_app.assembly import build_service

        service = build_service(settings)
        try:
            result = run(service, args)
        except PersonNotFoundError as exc:
            print(f"error: no person {exc}", file=sys.stderr)
            return 2
        except PeopleConflictError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        finally:
            service.close()
            service.index.close()
        print(json.dumps(result, indent=2))
        return 0

    return command


def _list(service: Any, args: argparse.Namespace) -> Any:
    people, total = service.people.store.list(args.collection, args.offset, args.limit, args.hidden)
    return {"total": total, "people": [_person_json(p) for p in people]}


def _show(service: Any, args: argparse.Namespace) -> Any:
    person = service.people.get(args.person_id)
    face_ids, _ = service.people.store.faces(args.person_id, args.offset, args.limit)
    faces = [r for f in face_ids if (r := service.index.get(f)) is not None]
    return _person_json(person) | {
        "faces": [
            {
                "face_id": r.face_id,
                "image_id": r.image_id,
                "storage_key": r.storage_key,
                "det_score": r.det_score,
            }
            for r in faces
        ]
    }


def _rename(service: Any, args: argparse.Namespace) -> Any:
    service.people.get(args.person_id)
    name = args.name or None  # "" clears the name
    return _person_json(service.people.store.update(args.person_id, name=name, set_name=True, hidden=None))


def _hide(service: Any, args: argparse.Namespace) -> Any:
    service.people.get(args.person_id)
    hidden = not args.show
    return _person_json(service.people.store.update(args.person_id, name=None, set_name=False, hidden=hidden))


def _merge(service: Any, args: argparse.Namespace) -> Any:
    people = service.people
    target = people.get(args.target)
    for source_id in args.sources:  # every id checked before anything moves
        source = people.get(source_id)
        if source_id == args.target:
            raise PeopleConflictError(f"cannot merge person {source_id} into itself")
        if source.collection != target.collection:
            raise PeopleConflictError(f"person {source_id} is in another collection than {args.target}")
    for source_id in dict.fromkeys(args.sources):
        target = people.merge(source_id, args.target)
    return _person_json(target)


def _delete(service: Any, args: argparse.Namespace) -> Any:
    return {"person_id": args.person_id, "unassigned_faces": service.people.delete(args.person_id)}


def _recluster(service: Any, args: argparse.Namespace) -> Any:
    from gpu_app.people.sources import collection_records

    result = service.people.recluster(args.collection, collection_records(service, args.collection))
    policy = service.people.policy
    return {
        "collection": result.collection,
        "faces": result.faces,
        "people": result.people,
        "unassigned": result.unassigned,
        "kept_names": result.kept_names,
        "threshold": policy.threshold,
        "min_faces": policy.min_faces,
    }


def add_people_parser(sub: Any) -> None:
    people = sub.add_parser("people", help="faces grouped into people: list, show, name, merge, re-cluster")
    actions = people.add_subparsers(dest="people_command", required=True)

    listing = actions.add_parser("list", help="people, most faces first")
    listing.add_argument("--collection", default=None)
    listing.add_argument("--hidden", action="store_true", help="include hidden people")
    listing.add_argument("--offset", type=int, default=0)
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(func=_with_service(_list))

    show = actions.add_parser("show", help="a person and their faces")
    show.add_argument("person_id")
    show.add_argument("--offset", type=int, default=0)
    show.add_argument("--limit", type=int, default=50)
    show.set_defaults(func=_with_service(_show))

    rename = actions.add_parser("rename", help='name a person ("" clears the name)')
    rename.add_argument("person_id")
    rename.add_argument("name")
    rename.set_defaults(func=_with_service(_rename))

    hide = actions.add_parser("hide", help="hide a person from the list (--show: unhide)")
    hide.add_argument("person_id")
    hide.add_argument("--show", action="store_true")
    hide.set_defaults(func=_with_service(_hide))

    merge = actions.add_parser("merge", help="merge SOURCE people into TARGET")
    merge.add_argument("target")
    merge.add_argument("sources", nargs="+")
    merge.set_defaults(func=_with_service(_merge))

    delete = actions.add_parser("delete", help="delete a person (faces stay, unassigned)")
    delete.add_argument("person_id")
    delete.set_defaults(func=_with_service(_delete))

    recluster = actions.add_parser("recluster", help="cluster a collection's faces from scratch")
    recluster.add_argument("--collection", default="default")
    recluster.set_defaults(func=_with_service(_recluster))
