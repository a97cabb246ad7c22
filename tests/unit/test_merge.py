"""The merge of copies (pure): a function of the set, never less than any copy."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from nxcloud_cdr.merge import fullness, merged

leaves = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["", "a", "b"]), st.just(float("nan")))
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["x", "y", "z"]), inner, max_size=3)
    ),
    max_leaves=8,
)
payloads = st.dictionaries(st.sampled_from(["callId", "duration", "recordUrl", "legs", "ext"]), values, max_size=5)


@settings(max_examples=400, deadline=None)
@given(copies=st.lists(payloads, min_size=1, max_size=5))
def test_the_merge_holds_at_least_what_each_copy_holds(copies: list[dict[str, Any]]):
    result = merged(copies)
    assert set(result) == {name for copy in copies for name in copy}
    for copy in copies:
        assert fullness(result) >= fullness(copy)
        for name, value in copy.items():
            assert fullness(result[name]) >= fullness(value), name


@settings(max_examples=200, deadline=None)
@given(copy=payloads)
def test_one_copy_or_the_same_copy_twice_is_that_copy(copy: dict[str, Any]):
    assert merged([copy]) == copy
    assert merged([copy, copy]) == copy


def test_fields_merge_one_by_one_and_ties_go_to_the_better_copy():
    better = {"callId": "1", "duration": 6, "recordUrl": "", "ext": {"a": 1}}
    other = {"callId": "1", "duration": 7, "recordUrl": "r.mp3", "ext": {"b": 2}, "mos": 4.2}
    assert merged([better, other]) == {
        "callId": "1",
        "duration": 6,  # both set: the better copy's
        "recordUrl": "r.mp3",  # only one set: that one
        "ext": {"a": 1, "b": 2},  # objects field by field
        "mos": 4.2,
    }
    # A list is taken whole: the fuller one.
    assert merged([{"legs": [{"a": 1}]}, {"legs": [{"a": 1}, {"b": 2}]}]) == {"legs": [{"a": 1}, {"b": 2}]}


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


def test_copies_nested_deeper_than_any_stack_still_merge():
    def deep(leaf: Any) -> dict[str, Any]:
        value: Any = leaf
        for _ in range(5000):
            value = {"x": value}
        return {"callId": "1", "d": value}

    result = merged([deep(1), deep("two")])
    assert result["callId"] == "1" and fullness(result) == 2  # the id and one of the deep values


def test_a_zero_time_is_no_value_in_the_fields_a_kind_names():
    better = {"callId": "1", "answerAt": 0, "direction": 0}
    other = {"callId": "1", "answerAt": 1671440454, "direction": 1}
    assert merged([better, other], frozenset({"answerAt"})) == {"callId": "1", "answerAt": 1671440454, "direction": 0}
    assert merged([better, {"callId": "1", "answerAt": 0}], frozenset({"answerAt"}))["answerAt"] == 0


def test_unset_times_are_no_value_in_lists_and_as_text():
    times = frozenset({"callAnswerAt", "answerTime"})
    zeros = {"callId": "1", "legList": [{"callAnswerAt": 0, "uuid": "a"}]}
    fuller = {"callId": "1", "legList": [{"callAnswerAt": 1714521610, "uuid": "a"}]}
    assert merged([zeros, fuller], times)["legList"] == fuller["legList"]  # a 0 there holds nothing
    assert merged([{"callId": "1", "answerTime": "0"}, {"callId": "1", "answerTime": 1690423244000}], times) == {
        "callId": "1",
        "answerTime": 1690423244000,
    }
