"""The `match:` language of docs/testcase-format.md: every operator, variables, paths, errors."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.scenario.matchers import (OPERATORS, MatcherError, Mismatch, UndefinedVariable, get_path, is_operator,
                                       lookup, match, substitute)


def ok(spec, actual, variables=None) -> bool:
    return match(spec, actual, variables) == []


def one(spec, actual, variables=None) -> Mismatch:
    found = match(spec, actual, variables)
    assert len(found) == 1, found
    return found[0]


# ---- literals -----------------------------------------------------------------------------

@pytest.mark.parametrize("spec, actual", [
    (42, 42), (42, 42.0), ("Accepted", "Accepted"), (True, True), (False, False), (None, None), (1.5, 1.5),
])
def test_literal_equal(spec, actual):
    assert ok(spec, actual)


@pytest.mark.parametrize("spec, actual", [
    (42, 43), ("Accepted", "accepted"), (True, 1), (1, True), (False, 0), (0, False), (None, 0), ("1", 1), (1, "1"),
])
def test_literal_not_equal(spec, actual):
    m = one(spec, actual)
    assert m.path == ""
    assert str(m).startswith("<payload>: expected ")


def test_mismatch_message_names_path_expected_and_found():
    m = one({"idTokenInfo": {"status": "Accepted"}}, {"idTokenInfo": {"status": "Blocked"}})
    assert m.path == "idTokenInfo.status"
    assert str(m) == 'idTokenInfo.status: expected "Accepted", found "Blocked"'


def test_missing_key_is_reported_as_absent():
    m = one({"status": "Accepted"}, {})
    assert str(m) == 'status: expected "Accepted", found absent'


# ---- partial dict match ---------------------------------------------------------------------

def test_dict_match_is_partial():
    payload = {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V", "serialNumber": "S"}}
    assert ok({"chargingStation": {"model": "M"}}, payload)
    assert ok({}, payload)


def test_dict_against_non_dict():
    assert str(one({"a": 1}, [1])) == "<payload>: expected an object, found [1]"
    assert one({"a": {"b": 1}}, {"a": 5}).path == "a"
    assert str(one({"a": {"b": 1}}, {})) == "a: expected an object, found absent"


def test_all_mismatches_are_reported():
    found = match({"a": 1, "b": {"c": 2, "d": 3}}, {"a": 0, "b": {"c": 0, "d": 3}})
    assert [m.path for m in found] == ["a", "b.c"]


# ---- arrays ---------------------------------------------------------------------------------

def test_array_exact_elements_in_order():
    assert ok([1, {"a": 1}], [1, {"a": 1, "extra": True}])       # elements match partially
    m = one([1, 2], [2, 1, 3])
    assert "an array of 2 element(s)" in m.expected
    assert [m.path for m in match([1, 2], [2, 1])] == ["[0]", "[1]"]
    assert "an array of 2" in one([1, 2], {"0": 1}).expected


def test_nested_array_paths():
    found = match({"meterValue": [{"sampledValue": [{"value": 1}, {"value": 2}]}]},
                  {"meterValue": [{"sampledValue": [{"value": 1}, {"value": 3}]}]})
    assert [m.path for m in found] == ["meterValue[0].sampledValue[1].value"]


# ---- operators ------------------------------------------------------------------------------

@pytest.mark.parametrize("name, good, bad", [
    ("string", "x", 1),
    ("integer", 3, 3.5),
    ("integer", -1, True),
    ("number", 3.5, "3.5"),
    ("number", 2, False),
    ("boolean", False, 0),
    ("object", {}, []),
    ("array", [], {}),
    ("null", None, 0),
])
def test_type(name, good, bad):
    assert ok({"$type": name}, good)
    m = one({"$type": name}, bad)
    assert m.expected == f"type {name}"


def test_type_list_means_any_of():
    assert ok({"$type": ["string", "null"]}, None)
    assert ok({"$type": ["string", "null"]}, "x")
    assert one({"$type": ["string", "null"]}, 1).expected == "type string or null"


def test_regex_is_a_full_match():
    assert ok({"$regex": "^[0-9]+$"}, "123")
    assert ok({"$regex": "[0-9]+"}, "123")
    assert not ok({"$regex": "[0-9]+"}, "123a")       # full match, not search
    assert not ok({"$regex": "[0-9]+"}, 123)          # not a string
    assert one({"$regex": "a.c"}, "abd").expected == "a string matching /a.c/"


def test_one_of():
    assert ok({"$one_of": ["Accepted", "Pending"]}, "Pending")
    m = one({"$one_of": ["Accepted", "Pending"]}, "Rejected")
    assert m.expected == 'one of ["Accepted", "Pending"]'
    assert not ok({"$one_of": [1, 2]}, True)          # True is not 1


def test_range_inclusive():
    assert ok({"$range": [1, 3]}, 1) and ok({"$range": [1, 3]}, 3) and ok({"$range": [1, 3]}, 2.5)
    assert one({"$range": [1, 3]}, 3.01).expected == "a number in [1, 3]"
    assert not ok({"$range": [1, 3]}, 0)
    assert ok({"$range": [0, 3]}, "2")           # decimal strings (1.6 meter values) count as numbers
    assert not ok({"$range": [0, 3]}, "two") and not ok({"$range": [0, 3]}, "nan")
    assert not ok({"$range": [0, 3]}, True)


@pytest.mark.parametrize("op, bound, good, bad", [
    ("$gt", 5, 6, 5), ("$gte", 5, 5, 4.99), ("$lt", 5, 4, 5), ("$lte", 5, 5, 5.01),
])
def test_comparisons(op, bound, good, bad):
    assert ok({op: bound}, good)
    assert one({op: bound}, bad).expected == f"a number {op[1:]} {bound}"
    assert ok({op: bound}, str(good)) and not ok({op: bound}, str(bad))   # 1.6 sends "350000.0"
    assert not ok({op: bound}, "not a number")


def test_combined_bounds():
    spec = {"$gte": 0, "$lt": 10}
    assert ok(spec, 0) and ok(spec, 9.99)
    assert not ok(spec, 10) and not ok(spec, -1)


def test_absent_and_present():
    assert ok({"a": {"$absent": True}}, {})
    assert str(one({"a": {"$absent": True}}, {"a": 1})) == "a: expected absent, found 1"
    assert ok({"a": {"$present": True}}, {"a": None})
    assert one({"a": {"$present": True}}, {}).path == "a"
    assert ok({"a": {"$present": False}}, {})
    assert not ok({"a": {"$present": False}}, {"a": 0})


def test_absent_key_fails_any_value_operator():
    assert not ok({"a": {"$type": "string"}}, {})
    assert not ok({"a": {"$one_of": [1]}}, {})


def test_contains():
    spec = {"$contains": {"measurand": "Energy.Active.Import.Register"}}
    assert ok(spec, [{"measurand": "Voltage"}, {"measurand": "Energy.Active.Import.Register", "value": 1}])
    m = one(spec, [{"measurand": "Voltage"}])
    assert m.expected.startswith("an array containing an element matching")
    assert not ok(spec, [])
    assert not ok(spec, {"measurand": "Energy.Active.Import.Register"})   # not an array


def test_each():
    assert ok({"$each": {"$type": "integer"}}, [1, 2, 3])
    assert ok({"$each": {"$type": "integer"}}, [])
    found = match({"v": {"$each": {"$gte": 0}}}, {"v": [1, -1, 2, -2]})
    assert [m.path for m in found] == ["v[1]", "v[3]"]
    assert one({"$each": 1}, "11").expected == "an array"


def test_len():
    assert ok({"$len": 2}, [1, 2]) and ok({"$len": 3}, "abc")
    assert ok({"$len": {"$gte": 1}}, ["x"])
    m = one({"v": {"$len": {"$gte": 3}}}, {"v": [1]})
    assert m.path == "v.length" and m.found == 1
    assert one({"$len": 1}, 5).expected == "something with a length"


def test_not():
    assert ok({"$not": "Rejected"}, "Accepted")
    assert one({"$not": "Rejected"}, "Rejected").expected == 'not "Rejected"'
    assert ok({"$not": {"$type": "string"}}, 5)
    assert ok({"a": {"$not": {"$absent": True}}}, {"a": 1})
    assert not ok({"a": {"$not": {"$absent": True}}}, {})


def test_exact_is_deep_equality_without_partial_match():
    assert ok({"$exact": {"a": 1}}, {"a": 1})
    assert not ok({"$exact": {"a": 1}}, {"a": 1, "b": 2})
    assert not ok({"$exact": [1, 2]}, [1, 2, 3])
    assert ok({"$exact": {"$type": "string"}}, {"$type": "string"})   # operators inside $exact are data
    assert ok({"$eq": 3}, 3.0)
    assert not ok({"$eq": True}, 1)


def test_operator_keys_cannot_be_mixed_with_plain_keys():
    # A dict with one plain key is a partial dict match; `$type` there is just a key to look up.
    assert not is_operator({"$type": "string", "plain": 1})
    assert is_operator({"$type": "string"})
    assert not is_operator({})
    assert not ok({"$type": "string", "plain": 1}, "x")


def test_every_documented_operator_is_known():
    documented = {"$type", "$regex", "$one_of", "$range", "$gte", "$lt", "$absent", "$present", "$contains",
                  "$each", "$len", "$not", "$exact"}
    assert documented <= OPERATORS


# ---- malformed matchers are the case's fault: MatcherError ---------------------------------

@pytest.mark.parametrize("spec, actual, text", [
    ({"$foo": 1}, 1, "unknown matcher operator(s) $foo"),
    ({"a": {"$regexp": "x"}}, {"a": "x"}, "unknown matcher operator(s) $regexp at a"),
    ({"$type": "str"}, "x", "$type 'str' unknown"),
    ({"$one_of": "Accepted"}, "Accepted", "$one_of needs a list"),
    ({"$gt": "five"}, 6, "$gt needs a number"),
    ({"$range": [1]}, 1, "$range needs [min, max]"),
    ({"$range": 5}, 1, "$range needs [min, max]"),
    ({"$range": ["a", "z"]}, 1, "$range needs [min, max]"),
    ({"$regex": "[unclosed"}, "x", "not a valid regular expression"),
])
def test_malformed_matcher_raises(spec, actual, text):
    with pytest.raises(MatcherError) as exc:
        match(spec, actual)
    assert text in str(exc.value)


def test_unknown_operator_lists_known_ones():
    with pytest.raises(MatcherError, match=r"known: .*\$contains"):
        match({"$nope": 1}, 1)


# ---- variables --------------------------------------------------------------------------------

def test_full_variable_keeps_its_type():
    assert ok({"transactionId": "$tx"}, {"transactionId": 17}, {"tx": 17})
    m = one({"transactionId": "$tx"}, {"transactionId": "17"}, {"tx": 17})
    assert m.expected == "17"
    assert substitute("$tx", {"tx": [1, 2]}) == [1, 2]
    assert substitute("$flag", {"flag": False}) is False


def test_inline_variable_interpolates_into_a_string():
    assert ok({"data": "tx-${tx}-end"}, {"data": "tx-17-end"}, {"tx": 17})
    assert substitute("${a}/${b}", {"a": "x", "b": 2}) == "x/2"


def test_dotted_variables():
    variables = {"pixit": {"valid_id_token": "TRUCK-0001", "evse": {"id": 2}}, "dut": {"station_id": "CS-1"}}
    assert ok({"idToken": {"idToken": "$pixit.valid_id_token"}}, {"idToken": {"idToken": "TRUCK-0001"}}, variables)
    assert lookup(variables, "pixit.evse.id") == 2
    assert substitute("${dut.station_id}", variables) == "CS-1"
    assert lookup({"a.b": 1, "a": {"b": 2}}, "a.b") == 1    # a flat name wins over the dotted walk


def test_variables_in_operator_arguments():
    variables = {"lo": 1, "hi": 3, "opts": ["A", "B"], "prefix": "TRUCK"}
    assert ok({"$range": ["$lo", "$hi"]}, 2, variables)
    assert ok({"$gte": "$lo"}, 1, variables)
    assert ok({"$one_of": "$opts"}, "B", variables)
    assert ok({"$regex": "${prefix}-[0-9]+"}, "TRUCK-0001", variables)
    assert ok({"$exact": "$opts"}, ["A", "B"], variables)


def test_now_and_uuid_builtins():
    now = lookup({}, "now")
    assert now.endswith("Z")
    datetime.fromisoformat(now.replace("Z", "+00:00"))
    assert ok({"$regex": r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"}, substitute("$now", {}))
    a, b = substitute("$uuid", {}), substitute("$uuid", {})
    assert a != b and uuid.UUID(a) and uuid.UUID(b)
    assert substitute({"id": "${uuid}"}, {})["id"] != "${uuid}"


def test_substitute_recurses_and_leaves_other_text_alone():
    out = substitute({"a": ["$x", {"b": "${x}!"}], "c": "$", "d": "US$ 5", "e": 1}, {"x": 7})
    assert out == {"a": [7, {"b": "7!"}], "c": "$", "d": "US$ 5", "e": 1}


def test_undefined_variable():
    with pytest.raises(UndefinedVariable, match=r"variable \$nope is not defined"):
        match({"a": "$nope"}, {"a": 1})
    with pytest.raises(UndefinedVariable):
        substitute("x-${missing}", {})
    with pytest.raises(UndefinedVariable, match=r"\$pixit.token"):
        lookup({"pixit": {}}, "pixit.token")
    assert issubclass(UndefinedVariable, MatcherError)


# ---- get_path ------------------------------------------------------------------------------------

def test_get_path():
    data = {"transactionInfo": {"transactionId": "T1"},
            "meterValue": [{"sampledValue": [{"value": 1}, {"value": 2}]}]}
    assert get_path(data, "transactionInfo.transactionId") == "T1"
    assert get_path(data, "meterValue[0].sampledValue[1].value") == 2
    assert get_path(data, "meterValue[0].sampledValue") == [{"value": 1}, {"value": 2}]
    assert get_path([[1, 2]], "[0][1]") == 2


@pytest.mark.parametrize("path", ["nope", "transactionInfo.nope", "meterValue[1]", "meterValue.x",
                                  "transactionInfo[0]", "transactionInfo.transactionId.deeper"])
def test_get_path_missing_raises_key_error(path):
    data = {"transactionInfo": {"transactionId": "T1"}, "meterValue": [{}]}
    with pytest.raises(KeyError):
        get_path(data, path)


# ---- properties ----------------------------------------------------------------------------------

def _plain_text(s: str) -> bool:
    return not s.startswith("$") and "${" not in s


json_scalars = (st.none() | st.booleans() | st.integers(-10**6, 10**6)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8).filter(_plain_text))
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=6).filter(lambda k: not k.startswith("$")), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_property_value_matches_itself(value):
    assert match(value, value) == []


@settings(max_examples=200, deadline=None)
@given(json_values, json_values)
def test_property_not_inverts(spec, actual):
    plain = match(spec, actual) == []
    negated = match({"$not": spec}, actual) == []
    assert plain != negated


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=6).filter(lambda k: not k.startswith("$")), json_values,
                       max_size=5), st.data())
def test_property_any_sub_dict_matches(payload, data):
    keys = data.draw(st.lists(st.sampled_from(sorted(payload)), unique=True) if payload else st.just([]))
    spec = {k: payload[k] for k in keys}
    assert match(spec, payload) == []


@settings(max_examples=100, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False), st.floats(allow_nan=False, allow_infinity=False),
       st.floats(allow_nan=False, allow_infinity=False))
def test_property_range_agrees_with_comparisons(a, b, x):
    lo, hi = min(a, b), max(a, b)
    assert ok({"$range": [lo, hi]}, x) == ok({"$gte": lo, "$lte": hi}, x) == (lo <= x <= hi)


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="abc0123456789-", max_size=10))
def test_property_regex_escape_matches_literal(text):
    assert ok({"$regex": re.escape(text)}, text)
