"""Rules the Lambdas check up front on the app's behalf must be the app's own rules (the Lambda package
cannot import gpu_app, so each side holds its copy and these tests pin them together)."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from gpu_app.batch.script_runner import INTERPRETERS
from gpu_app.schemas import Collection
from lambdas.common.validation import InvalidMessageError, optional_collection
from lambdas.dispatcher.triggers.batch_job import RUNNABLE_SUFFIXES

COLLECTION_NAMES = [
    "default",
    "family-2024",
    "a.b_c-D",
    "x" * 64,
    "x" * 65,
    "",
    "a/b",
    "a b",
    "café",
    "a\u2028b",
    "..",
    "-",
]


def app_accepts(name: str) -> bool:
    try:
        TypeAdapter(Collection).validate_python(name)
    except ValidationError:
        return False
    return True


def dispatcher_accepts(name: str) -> bool:
    try:
        optional_collection({"collection": name}, "collection", "data")
    except InvalidMessageError:
        return False
    return True


@pytest.mark.parametrize("name", COLLECTION_NAMES)
def test_dispatcher_and_app_accept_the_same_collection_names(name: str) -> None:
    assert dispatcher_accepts(name) is app_accepts(name)


def test_dispatcher_accepts_exactly_the_scripts_the_runner_runs() -> None:
    assert set(RUNNABLE_SUFFIXES) == set(INTERPRETERS)
