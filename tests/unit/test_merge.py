"""The join of copies (pure): a function of the set, computed one copy at a time, never
less than any copy, bounded."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from nxcloud_cdr import merge
from nxcloud_cdr.merge import Copy, State, fullness

leaves = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["", "a", "b"]), st.just(float("nan")))
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["x", "y", "uuid"]), inner, max_size=3),
    ),
    max_leaves=8,
)
payloads = st.dictionaries(st.sampled_from(["callId", "duration", "recordUrl", "legs", "ext"]), values, max_size=5)


def copy(payload: dict[str, Any], rank: int, *, group: str = "", unreadable: frozenset[Any] = frozenset()) -> Copy:
    return Copy(
        rank=f"{rank:09d}.{0:016d}.{rank:064x}",
        group=group,
        payload=payload,
        unreadable=unreadable,
        zero_is_unset=frozenset({"answerAt", "callAnswerAt", "answerTime"}),
        summary={},
        links=(),
        source="push",
        received_at=f"2024-05-01T00:00:{rank % 60:02d}.000Z",
    )


def merged(payloads: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
    """The body the join of ``payloads`` shows, the first the best-ranked."""
    return merge.join(copy(payload, 100 - number, **options) for number, payload in enumerate(payloads)).body()


def shown(state: State) -> str:
    return json.dumps(state.body(), sort_keys=True, default=str) + merge.encode(state).hex()


@settings(max_examples=400, deadline=None)
@given(copies=st.lists(payloads, min_size=1, max_size=5), order=st.randoms(use_true_random=False))
def test_the_join_is_a_function_of_the_set_and_holds_at_least_each_copy(copies, order):
    ranked = [copy(payload, 100 - number) for number, payload in enumerate(copies)]
    shuffled = list(ranked)
    order.shuffle(shuffled)
    once = merge.join(ranked)
    # Any order, a copy twice, or one copy at a time through the stored form: one state.
    again = merge.join([*shuffled, *shuffled[:2]])
    stepwise = State()
    for one in shuffled:
        stepwise = merge.decode(merge.encode(merge.join([one], stepwise)))
    assert shown(once) == shown(again)
    assert once.same_as(stepwise) and shown(once) == shown(stepwise)
    body = once.body()
    assert set(body) == {name for payload in copies for name in payload}
    for payload in copies:
        for name, value in payload.items():
            assert fullness(body[name]) >= fullness(value), name


@settings(max_examples=200, deadline=None)
@given(payload=payloads)
def test_one_copy_or_the_same_copy_twice_shows_that_copy(payload):
    assert merged([payload]) == merged([payload, payload])
    assert fullness(merged([payload])) == fullness(payload)


def test_values_join_one_by_one_and_ties_go_to_the_better_copy():
    better = {"callId": "1", "duration": 6, "recordUrl": "", "ext": {"a": 1}}
    other = {"callId": "1", "duration": 7, "recordUrl": "r.mp3", "ext": {"b": 2}, "mos": 4.2}
    assert merged([better, other]) == {
        "callId": "1",
        "duration": 6,  # both set: the better copy's
        "recordUrl": "r.mp3",  # only one set: that one
        "ext": {"a": 1, "b": 2},  # objects value by value
        "mos": 4.2,
    }


def test_list_entries_join_by_uuid_else_by_position():
    one = {"legs": [{"uuid": "a", "file": "a.mp3"}]}
    two = {"legs": [{"uuid": "b", "duration": 5}, {"uuid": "a", "duration": 64}]}
    assert merged([two, one])["legs"] == [{"uuid": "b", "duration": 5}, {"uuid": "a", "duration": 64, "file": "a.mp3"}]
    assert merged([{"legs": [{"a": 1}, {"b": 2}]}, {"legs": [{"c": 3}]}])["legs"] == [{"a": 1, "c": 3}, {"b": 2}]
    # A list of plain values is one value: the fullest.
    assert merged([{"labels": ["x"]}, {"labels": ["x", "y"]}])["labels"] == ["x", "y"]


def test_a_value_the_model_could_not_read_loses_to_one_it_reads():
    unreadable = copy(
        {"duration": "six", "startTime": "2023-11-17 13:42:30"},
        9,
        unreadable=frozenset({("duration",), ("startTime",)}),
    )
    readable = copy({"duration": 6, "startTime": 1690423237704}, 1)
    for order in ([unreadable, readable], [readable, unreadable]):
        assert merge.join(order).body() == {"duration": 6, "startTime": 1690423237704}
    # ...but over no value at all, it is kept (raw keeps what NXCLOUD sent).
    assert merge.join([unreadable, copy({"duration": None}, 1)]).body()["duration"] == "six"


def test_zero_and_false_are_values_nan_and_null_are_not():
    # direction 0 is inbound, hangupBy 0 the agent: a code, not "not set".
    better = {"callId": "1", "direction": 0, "hangupBy": 0, "answered": False, "callDuration": float("nan")}
    other = {"callId": "1", "direction": 1, "hangupBy": 2, "answered": True, "callDuration": 5}
    assert merged([better, other]) == {
        "callId": "1",
        "direction": 0,
        "hangupBy": 0,
        "answered": False,
        "callDuration": 5,  # NaN holds nothing
    }


def test_copies_nested_deeper_than_any_stack_still_join():
    def deep(leaf: Any) -> dict[str, Any]:
        value: Any = leaf
        for _ in range(5000):
            value = {"x": value}
        return {"callId": "1", "d": value}

    state = merge.join([copy(deep(1), 2), copy(deep("two"), 1)])
    result = merge.decode(merge.encode(state)).body()
    assert result["callId"] == "1" and fullness(result) == 2  # the id and one of the deep values


def test_a_zero_time_is_no_value_in_the_fields_a_kind_names():
    better = {"callId": "1", "answerAt": 0, "direction": 0}
    other = {"callId": "1", "answerAt": 1671440454, "direction": 1}
    assert merged([better, other]) == {"callId": "1", "answerAt": 1671440454, "direction": 0}
    assert merged([better, {"callId": "1", "answerAt": 0}])["answerAt"] == 0


def test_unset_times_are_no_value_in_lists_and_as_text():
    zeros = {"callId": "1", "legList": [{"callAnswerAt": 0, "uuid": "a"}]}
    fuller = {"callId": "1", "legList": [{"callAnswerAt": 1714521610, "uuid": "a"}]}
    assert merged([zeros, fuller])["legList"] == fuller["legList"]  # a 0 there holds nothing
    assert merged([{"callId": "1", "answerTime": "0"}, {"callId": "1", "answerTime": 1690423244000}]) == {
        "callId": "1",
        "answerTime": 1690423244000,
    }


def test_formats_join_apart_and_the_best_copys_format_is_shown():
    flat = copy({"callId": "1", "startAt": 1671440452, "duration": 6}, 9)
    partial = copy({"callId": "1", "didX": "852", "legList": []}, 3, group="2024")
    for order in ([flat, partial], [partial, flat]):
        assert merge.join(order).body() == {"callId": "1", "startAt": 1671440452, "duration": 6}


def test_the_call_by_meaning_joins_across_formats_and_an_answer_stays():
    flat = copy({"callId": "1"}, 9)
    flat = Copy(**{**flat.__dict__, "summary": {"outcome": "no_answer", "startUtc": "2024-05-01T00:00:00.000Z"}})
    other = copy({"callId": "1", "legList": []}, 3, group="2024")
    other = Copy(**{**other.__dict__, "summary": {"outcome": "answered", "durationSec": 64}})
    for order in ([flat, other], [other, flat]):
        assert merge.join(order).summary_values() == {
            "startUtc": "2024-05-01T00:00:00.000Z",
            "durationSec": 64,
            "outcome": "answered",
        }


@settings(max_examples=100, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 400), min_size=2, max_size=8),
    shrink=st.booleans(),
    order=st.randoms(use_true_random=False),
)
def test_what_the_budget_leaves_out_is_a_function_of_the_set(sizes, shrink, order):
    """Copies each with a value of its own and one they share (which a later, better
    copy may shrink): trimmed to a small budget one copy at a time in any order, with
    the left-out values read back as the writer does, the body is the same."""
    copies = [
        copy(
            {"callId": "1", "shared": "s" * (size if not (shrink and number == 0) else 1), f"own{number}": "v" * size},
            100 - number,
        )
        for number, size in enumerate(sizes)
    ]
    budget = sum(sizes) // 2 + 600
    by_rank = {one.rank: one.payload for one in copies}

    def trimmed(sequence: list[Copy]) -> dict[str, Any]:
        state = State()
        for one in sequence:
            state = merge.decode(merge.encode(merge.join([one], state)))
            for group, path, rank in state.trim(budget):
                state.restore(group, path, merge.leaf_at(by_rank[rank], path))
        return state.body()

    shuffled = list(copies)
    order.shuffle(shuffled)
    assert trimmed(copies) == trimmed(shuffled) == trimmed(list(reversed(copies)))


@settings(max_examples=25, deadline=None)
@given(
    shapes=st.lists(st.tuples(st.integers(1, 400), st.integers(1, 60)), min_size=2, max_size=8),
    order=st.randoms(use_true_random=False),
)
def test_the_stored_state_is_bounded_whatever_paths_the_copies_bring(shapes, order):
    """Copies that each bring fields of their own (``width`` fields of ``name`` characters)
    or lists of empty objects: through the stored form, one at a time, in any order,
    the state never passes its two budgets, and what it forgets is a function of the set."""
    copies = []
    for number, (width, name) in enumerate(shapes):
        payload: dict[str, Any] = {f"{number}-{index}-" + "n" * name: index for index in range(width)}
        payload[f"list{number}"] = [{}] * width
        copies.append(copy(payload, 100 - number))
    budget = 20_000  # small, so that the structure's budget is passed in most cases
    results = []
    for attempt in range(2):
        shuffled = list(copies)
        if attempt:
            order.shuffle(shuffled)
        state = State()
        for one in shuffled:
            state = merge.join([one], state)
            state.trim(budget)
            state = merge.decode(merge.encode(state))
            structure = sum(2 * len(merge._path_text(path)) + 16 for _, path in state.order)
            assert structure <= budget * merge.STRUCTURE_BUDGET // merge.LEAF_BUDGET
        results.append((state.forgotten, sorted(state.order), json.dumps(state.body(), sort_keys=True)))
    assert results[0] == results[1]
