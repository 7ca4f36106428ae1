"""EventBridge pattern semantics, as table tests built from the EventBridge user guide's examples.

Sources (examples re-typed, not copied):
- OPS: "Comparison operators for use in event patterns" / "Content filtering in Amazon EventBridge
  event patterns": https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-pattern-operators.html
- NULL: "Matching events on null values and empty strings":
  https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns-null-values.html
- ARRAYS / NESTED: "Event patterns" (array values, nested fields):
  https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns.html
"""

from __future__ import annotations

from typing import Any

import pytest

from local_stack.eventbridge.patterns import InvalidEventPattern, compile_pattern

# The user guide's running example: an EC2 state-change event (fields trimmed/extended as the
# examples need them).
EC2_EVENT: dict[str, Any] = {
    "version": "0",
    "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
    "detail-type": "EC2 Instance State-change Notification",
    "source": "aws.ec2",
    "account": "111122223333",
    "time": "2017-12-22T18:43:48Z",
    "region": "us-west-1",
    "resources": ["arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"],
    "detail": {
        "instance-id": "i-1234567890abcdef0",
        "state": "terminated",
        "c-count": 5,
        "d-count": 7,
        "x-limit": 301.8,
        "source-ip": "10.0.0.123",
        "FileName": "image.png",
        "FilePath": "/usr/lib/libc.so",
        "service": "EventBridge",
    },
}


def d(fields: dict[str, Any]) -> dict[str, Any]:
    return {"source": "my.app", "detail-type": "t", "detail": fields}


CASES: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = [
    # --- exact matching (ARRAYS/NESTED) ---
    ("exact source", {"source": ["aws.ec2"]}, EC2_EVENT, True),
    ("exact source other", {"source": ["aws.s3"]}, EC2_EVENT, False),
    ("exact OR in array", {"source": ["aws.s3", "aws.ec2"]}, EC2_EVENT, True),
    (
        "nested AND",
        {
            "source": ["aws.ec2"],
            "detail-type": ["EC2 Instance State-change Notification"],
            "detail": {"state": ["terminated"]},
        },
        EC2_EVENT,
        True,
    ),
    ("nested AND one fails", {"source": ["aws.ec2"], "detail": {"state": ["running"]}}, EC2_EVENT, False),
    ("missing field", {"detail": {"nope": ["x"]}}, EC2_EVENT, False),
    ("case sensitive", {"detail": {"state": ["Terminated"]}}, EC2_EVENT, False),
    ("number exact", {"detail": {"c-count": [5]}}, EC2_EVENT, True),
    ("number exact 5.0", {"detail": {"c-count": [5.0]}}, EC2_EVENT, True),
    ("number vs string", {"detail": {"c-count": ["5"]}}, EC2_EVENT, False),
    ("true is not 1", {"detail": {"flag": [1]}}, d({"flag": True}), False),
    ("boolean exact", {"detail": {"flag": [True]}}, d({"flag": True}), True),
    # --- arrays in the event: match if the intersection is non-empty (ARRAYS) ---------------------
    (
        "resources intersection",
        {
            "resources": [
                "arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f",
                "arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0",
            ]
        },
        EC2_EVENT,
        True,
    ),
    ("resources disjoint", {"resources": ["arn:aws:ec2:us-east-1:1:instance/x"]}, EC2_EVENT, False),
    (
        "array of objects",
        {"detail": {"items": {"sku": ["b"]}}},
        d({"items": [{"sku": "a"}, {"sku": "b"}]}),
        True,
    ),
    (
        "array of objects same element",
        {"detail": {"items": {"sku": ["a"], "qty": [2]}}},
        d({"items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}]}),
        False,
    ),
    ("empty event array", {"resources": ["x"]}, {"resources": []}, False),
    # --- null and empty string (NULL) ---
    (
        "empty string",
        {"detail": {"eventVersion": [""]}},
        d({"eventVersion": "", "responseElements": None}),
        True,
    ),
    (
        "null value",
        {"detail": {"responseElements": [None]}},
        d({"eventVersion": "", "responseElements": None}),
        True,
    ),
    (
        "null does not match empty string",
        {"detail": {"eventVersion": [None]}},
        d({"eventVersion": ""}),
        False,
    ),
    (
        "empty string does not match null",
        {"detail": {"responseElements": [""]}},
        d({"responseElements": None}),
        False,
    ),
    ("null does not match missing", {"detail": {"responseElements": [None]}}, d({}), False),
    # --- prefix (OPS) ---
    ("prefix time", {"time": [{"prefix": "2017-12-22"}]}, EC2_EVENT, True),
    ("prefix time other day", {"time": [{"prefix": "2017-10-02"}]}, EC2_EVENT, False),
    ("prefix region us-", {"region": [{"prefix": "us-"}]}, EC2_EVENT, True),
    (
        "prefix ignore case",
        {"detail": {"service": [{"prefix": {"equals-ignore-case": "eventb"}}]}},
        EC2_EVENT,
        True,
    ),
    (
        "prefix ignore case EVENTB",
        {"detail": {"service": [{"prefix": {"equals-ignore-case": "EVENTB"}}]}},
        EC2_EVENT,
        True,
    ),
    ("prefix is case sensitive", {"detail": {"service": [{"prefix": "eventb"}]}}, EC2_EVENT, False),
    ("prefix on number", {"detail": {"c-count": [{"prefix": "5"}]}}, EC2_EVENT, False),
    # --- suffix (OPS) ---
    ("suffix .png", {"detail": {"FileName": [{"suffix": ".png"}]}}, EC2_EVENT, True),
    ("suffix .PNG case", {"detail": {"FileName": [{"suffix": ".PNG"}]}}, EC2_EVENT, False),
    (
        "suffix ignore case",
        {"detail": {"FileName": [{"suffix": {"equals-ignore-case": ".PNG"}}]}},
        EC2_EVENT,
        True,
    ),
    (
        "suffix tbridge ignore case",
        {"detail": {"service": [{"suffix": {"equals-ignore-case": "TBRIDGE"}}]}},
        EC2_EVENT,
        True,
    ),
    # --- equals-ignore-case (OPS) ------------------------------------------------------------------
    (
        "equals-ignore-case detail-type",
        {"detail-type": [{"equals-ignore-case": "ec2 instance state-change notification"}]},
        EC2_EVENT,
        True,
    ),
    (
        "equals-ignore-case Alice",
        {"detail": {"Name": [{"equals-ignore-case": "alice"}]}},
        d({"Name": "ALICE"}),
        True,
    ),
    (
        "equals-ignore-case other",
        {"detail": {"Name": [{"equals-ignore-case": "alice"}]}},
        d({"Name": "Bob"}),
        False,
    ),
    # --- anything-but (OPS) ---------------------------------------------------------------------------
    ("anything-but string", {"detail": {"state": [{"anything-but": "initializing"}]}}, EC2_EVENT, True),
    ("anything-but string equal", {"detail": {"state": [{"anything-but": "terminated"}]}}, EC2_EVENT, False),
    ("anything-but number", {"detail": {"c-count": [{"anything-but": 123}]}}, EC2_EVENT, True),
    ("anything-but number equal", {"detail": {"c-count": [{"anything-but": 5}]}}, EC2_EVENT, False),
    (
        "anything-but list",
        {"detail": {"state": [{"anything-but": ["stopped", "overloaded"]}]}},
        EC2_EVENT,
        True,
    ),
    (
        "anything-but list hit",
        {"detail": {"state": [{"anything-but": ["stopped", "terminated"]}]}},
        EC2_EVENT,
        False,
    ),
    (
        "anything-but number list",
        {"detail": {"c-count": [{"anything-but": [100, 200, 300]}]}},
        EC2_EVENT,
        True,
    ),
    ("anything-but number list hit", {"detail": {"c-count": [{"anything-but": [4, 5]}]}}, EC2_EVENT, False),
    ("anything-but missing field", {"detail": {"nope": [{"anything-but": "x"}]}}, EC2_EVENT, False),
    ("anything-but prefix", {"detail": {"state": [{"anything-but": {"prefix": "init"}}]}}, EC2_EVENT, True),
    ("anything-but prefix hit", {"region": [{"anything-but": {"prefix": "us-"}}]}, EC2_EVENT, False),
    ("anything-but prefix list", {"region": [{"anything-but": {"prefix": ["eu-", "ap-"]}}]}, EC2_EVENT, True),
    (
        "anything-but suffix",
        {"detail": {"FileName": [{"anything-but": {"suffix": ".txt"}}]}},
        EC2_EVENT,
        True,
    ),
    (
        "anything-but suffix hit",
        {"detail": {"FileName": [{"anything-but": {"suffix": ".png"}}]}},
        EC2_EVENT,
        False,
    ),
    (
        "anything-but suffix list hit",
        {"detail": {"FileName": [{"anything-but": {"suffix": [".txt", ".png"]}}]}},
        EC2_EVENT,
        False,
    ),
    (
        "anything-but ignore case list",
        {"detail": {"state": [{"anything-but": {"equals-ignore-case": ["Stopped", "OverLoaded"]}}]}},
        EC2_EVENT,
        True,
    ),
    (
        "anything-but ignore case hit",
        {"detail": {"state": [{"anything-but": {"equals-ignore-case": "TERMINATED"}}]}},
        EC2_EVENT,
        False,
    ),
    (
        "anything-but wildcard",
        {"detail": {"FilePath": [{"anything-but": {"wildcard": "*/bin/*"}}]}},
        EC2_EVENT,
        True,
    ),
    (
        "anything-but wildcard hit",
        {"detail": {"FilePath": [{"anything-but": {"wildcard": "*/lib/*"}}]}},
        EC2_EVENT,
        False,
    ),
    (
        "anything-but wildcard list hit",
        {"detail": {"FilePath": [{"anything-but": {"wildcard": ["*/bin/*", "*/lib/*"]}}]}},
        EC2_EVENT,
        False,
    ),
    # --- numeric (OPS) ---
    ("numeric range", {"detail": {"c-count": [{"numeric": [">", 0, "<=", 5]}]}}, EC2_EVENT, True),
    ("numeric range upper open", {"detail": {"c-count": [{"numeric": [">", 0, "<", 5]}]}}, EC2_EVENT, False),
    ("numeric lt", {"detail": {"d-count": [{"numeric": ["<", 10]}]}}, EC2_EVENT, True),
    ("numeric eq 3.018e2", {"detail": {"x-limit": [{"numeric": ["=", 3.018e2]}]}}, EC2_EVENT, True),
    ("numeric ge", {"detail": {"c-count": [{"numeric": [">=", 5]}]}}, EC2_EVENT, True),
    ("numeric on string", {"detail": {"state": [{"numeric": [">", 0]}]}}, EC2_EVENT, False),
    (
        "numeric combined (guide)",
        {
            "detail": {
                "c-count": [{"numeric": [">", 0, "<=", 5]}],
                "d-count": [{"numeric": ["<", 10]}],
                "x-limit": [{"numeric": ["=", 3.018e2]}],
            }
        },
        EC2_EVENT,
        True,
    ),
    # --- IP address (OPS) ---
    ("cidr v4", {"detail": {"source-ip": [{"cidr": "10.0.0.0/24"}]}}, EC2_EVENT, True),
    ("cidr v4 outside", {"detail": {"source-ip": [{"cidr": "10.0.1.0/24"}]}}, EC2_EVENT, False),
    ("cidr v6", {"detail": {"ip": [{"cidr": "2001:db8::/64"}]}}, d({"ip": "2001:db8::1"}), True),
    # --- exists (OPS): leaf nodes only ---
    ("exists true", {"detail": {"c-count": [{"exists": True}]}}, EC2_EVENT, True),
    ("exists true missing", {"detail": {"nope": [{"exists": True}]}}, EC2_EVENT, False),
    ("exists false missing", {"detail": {"nope": [{"exists": False}]}}, EC2_EVENT, True),
    ("exists false present", {"detail": {"c-count": [{"exists": False}]}}, EC2_EVENT, False),
    ("exists true null value", {"detail": {"v": [{"exists": True}]}}, d({"v": None}), True),
    ("exists true on object", {"detail": {"o": [{"exists": True}]}}, d({"o": {"a": 1}}), False),
    ("exists false parent missing", {"detail": {"a": {"b": [{"exists": False}]}}}, d({}), True),
    ("exists true parent missing", {"detail": {"a": {"b": [{"exists": True}]}}}, d({}), False),
    # --- wildcard (OPS) ---
    (
        "wildcard bus arn",
        {"detail": {"EventBusArn": [{"wildcard": "arn:aws:events:us-east-1:*:event-bus/*"}]}},
        d({"EventBusArn": "arn:aws:events:us-east-1:123456789012:event-bus/default"}),
        True,
    ),
    (
        "wildcard bus arn other region",
        {"detail": {"EventBusArn": [{"wildcard": "arn:aws:events:us-east-1:*:event-bus/*"}]}},
        d({"EventBusArn": "arn:aws:events:eu-west-1:123456789012:event-bus/default"}),
        False,
    ),
    ("wildcard dir", {"detail": {"FilePath": [{"wildcard": "*/lib/*"}]}}, EC2_EVENT, True),
    ("wildcard escaped star", {"detail": {"k": [{"wildcard": "a\\*b"}]}}, d({"k": "a*b"}), True),
    ("wildcard escaped star literal", {"detail": {"k": [{"wildcard": "a\\*b"}]}}, d({"k": "axb"}), False),
    # --- $or (OPS) ---
    (
        "$or detail (guide)",
        {
            "detail": {
                "$or": [
                    {"c-count": [{"numeric": [">", 0, "<=", 5]}]},
                    {"d-count": [{"numeric": ["<", 10]}]},
                    {"x-limit": [{"numeric": ["=", 3.018e2]}]},
                ]
            }
        },
        d({"c-count": 100, "d-count": 100, "x-limit": 301.8}),
        True,
    ),
    (
        "$or none",
        {"detail": {"$or": [{"c-count": [1]}, {"d-count": [2]}]}},
        d({"c-count": 3, "d-count": 4}),
        False,
    ),
    (
        "$or top level with AND",
        {
            "source": ["aws.cloudwatch"],
            "$or": [{"metricName": ["CPUUtilization", "ReadLatency"]}, {"namespace": ["AWS/EC2", "AWS/ES"]}],
        },
        {"source": "aws.cloudwatch", "namespace": "AWS/EC2", "metricName": "Other"},
        True,
    ),
    (
        "$or top level AND fails",
        {
            "source": ["aws.cloudwatch"],
            "$or": [{"metricName": ["CPUUtilization"]}, {"namespace": ["AWS/EC2"]}],
        },
        {"source": "aws.ec2", "namespace": "AWS/EC2"},
        False,
    ),
    (
        "$or nested alternatives",
        {"$or": [{"detail": {"state": ["running"]}}, {"detail": {"c-count": [{"numeric": [">", 4]}]}}]},
        EC2_EVENT,
        True,
    ),
    # --- several alternatives in one array: OR across matcher kinds ---
    ("mixed alternatives", {"detail": {"state": ["running", {"prefix": "term"}]}}, EC2_EVENT, True),
    ("exists false or value", {"detail": {"k": ["a", {"exists": False}]}}, d({}), True),
    # --- the catalog's own rules ---
    (
        "catalog notify rule",
        {"source": ["chatflow.chat"], "detail-type": ["message.created", "member.joined"]},
        {"source": "chatflow.chat", "detail-type": "member.joined", "detail": {}},
        True,
    ),
    (
        "catalog notify rule other type",
        {"source": ["chatflow.chat"], "detail-type": ["message.created", "member.joined"]},
        {"source": "chatflow.chat", "detail-type": "user.online", "detail": {}},
        False,
    ),
]


@pytest.mark.parametrize(("name", "pattern", "event", "expected"), CASES, ids=[c[0] for c in CASES])
def test_pattern_matches_like_eventbridge(
    name: str, pattern: dict[str, Any], event: dict[str, Any], expected: bool
) -> None:
    assert compile_pattern(pattern).matches(event) is expected


def test_pattern_accepts_json_text() -> None:
    assert compile_pattern('{"detail": {"state": ["terminated"]}}').matches(EC2_EVENT)


INVALID: list[tuple[str, Any, str]] = [
    ("not an object", ["source"], "JSON object"),
    ("not JSON", "{source", "not valid JSON"),
    ("empty pattern", {}, "empty objects"),
    ("scalar leaf", {"source": "aws.ec2"}, "must be arrays or objects"),
    ("empty array", {"source": []}, "empty arrays"),
    ("nested array", {"source": [["a"]]}, "nested arrays"),
    ("unknown operator", {"source": [{"startswith": "a"}]}, "unrecognized match type"),
    ("two operators", {"source": [{"prefix": "a", "suffix": "b"}]}, "exactly one operator"),
    ("prefix number", {"source": [{"prefix": 1}]}, "prefix must be"),
    ("numeric bad op", {"n": [{"numeric": ["!=", 1]}]}, "unknown numeric operator"),
    ("numeric odd", {"n": [{"numeric": [">", 1, "<"]}]}, "pairs"),
    ("numeric string operand", {"n": [{"numeric": [">", "1"]}]}, "must be numbers"),
    ("numeric inverted range", {"n": [{"numeric": [">", 10, "<", 5]}]}, "lower bound"),
    ("numeric two lower", {"n": [{"numeric": [">", 1, ">=", 2]}]}, "more than one lower"),
    ("numeric too big", {"n": [{"numeric": [">", 6e9]}]}, "5.0e9"),
    ("numeric eq combined", {"n": [{"numeric": ["=", 1, "<", 5]}]}, "'='"),
    ("exists non-bool", {"n": [{"exists": "yes"}]}, "true or false"),
    ("anything-but mixed list", {"n": [{"anything-but": ["a", 1]}]}, "strings only or numbers only"),
    ("anything-but empty list", {"n": [{"anything-but": []}]}, "must not be empty"),
    ("anything-but numeric", {"n": [{"anything-but": {"numeric": [">", 1]}}]}, "does not support"),
    ("wildcard consecutive", {"n": [{"wildcard": "a**b"}]}, "consecutive"),
    ("wildcard bad escape", {"n": [{"wildcard": "a\\b"}]}, "invalid escape"),
    ("cidr bad", {"n": [{"cidr": "10.0.0/33"}]}, "CIDR"),
    ("$or single", {"$or": [{"a": ["x"]}]}, "at least two"),
    ("$or not list", {"$or": {"a": ["x"]}}, "at least two"),
    ("$or scalar alt", {"$or": [{"a": ["x"]}, "b"]}, "must be an object"),
    ("object in array", {"a": [{"b": ["x"]}]}, "unrecognized match type"),
]


@pytest.mark.parametrize(("name", "pattern", "reason"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_patterns_are_rejected_with_a_reason(name: str, pattern: Any, reason: str) -> None:
    with pytest.raises(InvalidEventPattern) as excinfo:
        compile_pattern(pattern)
    assert reason in str(excinfo.value)
    assert str(excinfo.value).startswith("Event pattern is not valid. Reason:")


def test_catalog_rules_compile() -> None:
    from infra.catalog import EVENT_RULES

    for rule in EVENT_RULES:
        compile_pattern(rule.pattern)
