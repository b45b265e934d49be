"""Sharding: balanced, contiguous, deterministic, covering; the input list and its pinning."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from gpu_app.batch import ConfigError
from gpu_app.batch.sharding import InputItem, list_prefix, parse_manifest, pinned_inputs, shard, shard_bounds
from gpu_app.storage.local import LocalStorage
from tests.batch.conftest import OUTPUT_BUCKET, Buckets


@pytest.mark.parametrize("total", [0, 1, 2, 7, 100, 1001])
@pytest.mark.parametrize("size", [1, 2, 3, 7, 10, 64])
def test_shards_are_balanced_contiguous_and_cover_every_item_once(total: int, size: int) -> None:
    items = list(range(total))
    shards = [shard(items, i, size) for i in range(size)]
    assert [x for part in shards for x in part] == items  # in order, each once
    lengths = [len(part) for part in shards]
    assert max(lengths) - min(lengths) <= 1
    assert max(lengths) == -(-total // size)  # never more than the dispatcher's ceil(N / n)
    assert shards == [shard(list(range(total)), i, size) for i in range(size)]  # deterministic


def test_more_children_than_items_leaves_some_empty() -> None:
    shards = [shard(["a", "b", "c"], i, 5) for i in range(5)]
    assert shards == [[], ["a"], [], ["b"], ["c"]]


def test_bounds_match_the_documented_formula() -> None:
    assert [shard_bounds(10, i, 3) for i in range(3)] == [(0, 3), (3, 6), (6, 10)]


@pytest.mark.parametrize(("index", "size"), [(2, 2), (-1, 2), (0, 0)])
def test_invalid_index_or_size_is_a_configuration_error(index: int, size: int) -> None:
    with pytest.raises(ConfigError):
        shard_bounds(10, index, size)


def test_prefix_listing_is_sorted_and_keeps_image_extensions_only(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    for key in [
        "p/b.JPG",
        "p/a.png",
        "p/sub/c.webp",
        "p/notes.txt",
        "p/x.jpg.faces.json",
        "q/d.jpg",
        "p/e.bmp",
    ]:
        storage.put(key, b"x")
    assert [item.key for item in list_prefix(storage, "p/")] == [
        "p/a.png",
        "p/b.JPG",
        "p/e.bmp",
        "p/sub/c.webp",
    ]


def test_manifest_lines_plain_and_json_with_metadata() -> None:
    lines = [
        "a.jpg",
        "   ",
        '{"key": "b.jpg", "camera": "hall", "tags": ["x"]}',
        '{"key": "c.jpg"}',
        "a.jpg",
    ]
    items = parse_manifest(lines)
    assert items == [
        InputItem("a.jpg"),
        InputItem("b.jpg", {"camera": "hall", "tags": ["x"]}),
        InputItem("c.jpg"),
    ]
    assert parse_manifest(item.to_json() for item in items) == items  # the pinned form round-trips


@pytest.mark.parametrize("line", ['{"key": ""}', '{"name": "a.jpg"}', "{not json", '{"key": 5}'])
def test_a_bad_manifest_line_is_a_configuration_error_naming_the_line(line: str) -> None:
    with pytest.raises(ConfigError, match="line 2 is neither a plain key nor a JSON object"):
        parse_manifest(["a.jpg", line])


def test_the_first_child_pins_the_list_and_later_children_shard_the_same(buckets: Buckets) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    key = "jobs/x/inputs.jsonl"
    first = [InputItem("a.jpg"), InputItem("b.jpg", {"n": 1})]
    assert pinned_inputs(s3, OUTPUT_BUCKET, key, lambda: first) == first
    # Images uploaded after the first child started do not move the shard boundaries.
    later = [InputItem("0.jpg"), *first]
    assert pinned_inputs(s3, OUTPUT_BUCKET, key, lambda: later) == first
    assert [json.loads(line) for line in buckets.get(key).decode().splitlines()] == [
        {"key": "a.jpg"},
        {"n": 1, "key": "b.jpg"},
    ]


def test_losing_the_pinning_race_reads_the_winners_list(buckets: Buckets) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    key = "jobs/x/inputs.jsonl"
    winner = [InputItem("w.jpg")]

    def list_while_another_child_pins() -> list[InputItem]:
        s3.put_object(Bucket=OUTPUT_BUCKET, Key=key, Body=winner[0].to_json().encode() + b"\n")
        return [InputItem("mine.jpg")]

    assert pinned_inputs(s3, OUTPUT_BUCKET, key, list_while_another_child_pins) == winner
