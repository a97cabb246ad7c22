"""The per-push time budget (moto, time injected): a write that cannot finish before the
function's Timeout answers 503 itself, before Lambda stops it, and NXCLOUD's retry joins
from whatever the stopped write left."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from nxcloud_cdr.receiver import STEP_RESERVE_MS, runtime

from tests.conftest import LambdaContext, as_read, body_of, load_event, load_handler

CALL_ID = "1604763745256783872"
KIND = "pns_call_result"
CALLS = ("put_item", "get_item", "query", "batch_get_item", "update_item")


@dataclass
class ShortContext(LambdaContext):
    """A context whose time runs out after ``allowed`` store calls of the function."""

    allowed: int = 1_000
    calls: int = 0

    def get_remaining_time_in_millis(self) -> int:
        return 10_000 if self.calls < self.allowed else STEP_RESERVE_MS - 1


def counted(monkeypatch: pytest.MonkeyPatch, context: ShortContext) -> None:
    client = runtime().writer._client
    for name in CALLS:
        real = getattr(client, name)

        def call(real: Any = real, **arguments: Any) -> Any:
            context.calls += 1
            return real(**arguments)

        monkeypatch.setattr(client, name, call)


def push(body: dict[str, Any], context: Any) -> dict[str, Any]:
    event = load_event("pns-call-result.json") | {"body": json.dumps(body)}
    return load_handler("PnsCallResultFunction")(event, context)


BASE = json.loads(load_event("pns-call-result.json")["body"])
# A second copy that knows less of one field and something the first does not.
OTHER = BASE | {"recordFile": "", "laterField": "from the second copy"}


def test_no_time_left_is_503_out_of_time_and_nothing_written(aws, push_env):
    response = push(BASE, ShortContext(allowed=0))

    assert response["statusCode"] == 503
    assert body_of(response)["error"] == "out_of_time"
    assert runtime().store.get(CALL_ID, KIND) == []


@pytest.mark.parametrize("allowed", range(6))
def test_a_join_stopped_at_any_step_is_503_and_the_retry_shows_the_whole_join(aws, push_env, monkeypatch, allowed):
    assert body_of(push(BASE, ShortContext()))["outcome"] == "stored"
    short = ShortContext(allowed=allowed)
    counted(monkeypatch, short)

    first = push(OTHER, short)

    # A join is: the failed PutItem that reads the item, the two versions, the item's
    # rewrite. Stopped before any of them, it answers 503 itself.
    assert first["statusCode"] == (200 if allowed >= 4 else 503), first
    if first["statusCode"] == 503:
        assert body_of(first)["error"] == "out_of_time"
        [shown] = runtime().store.get(CALL_ID, KIND)
        assert json.loads(as_read(shown)["raw"]) == BASE  # still the one copy, whole
    monkeypatch.undo()
    for name, value in push_env.items():
        monkeypatch.setenv(name, value)

    retried = push(OTHER, ShortContext())

    assert retried["statusCode"] == 200
    [shown] = runtime().store.get(CALL_ID, KIND)
    joined = json.loads(as_read(shown)["raw"])
    assert joined["recordFile"] == BASE["recordFile"] and joined["laterField"] == OTHER["laterField"]
    assert sorted(json.loads(v["raw"])["recordFile"] for v in runtime().store.versions(CALL_ID)) == sorted(
        ["", BASE["recordFile"]]
    )
