"""``details.fields`` of a 422 never carries the input (chatflow.http.app.validation_fields),
checked on pydantic's own errors -- including those whose message would quote the input."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chatflow.http.app import validation_fields

SECRET = "Sw0rdf1sh-hunter2"


class Cat(BaseModel):
    kind: Literal["cat"]


class Dog(BaseModel):
    kind: Literal["dog"]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pet: Annotated[Cat | Dog, Field(discriminator="kind")]
    count: int = 0


def _errors(data: dict[str, Any]) -> list[Any]:
    with pytest.raises(ValidationError) as info:
        Body.model_validate(data)
    return info.value.errors()


def test_a_message_that_quotes_the_input_is_replaced() -> None:
    errors = _errors({"pet": {"kind": SECRET}})
    assert SECRET in json.dumps([e["msg"] for e in errors])  # pydantic quotes the tag it got
    fields = validation_fields(errors)
    assert SECRET not in json.dumps(fields)
    assert fields == [
        {"loc": ["pet"], "type": "union_tag_invalid", "message": "invalid value (union_tag_invalid)"}
    ]


def test_unknown_fields_are_named_only_when_they_look_like_names() -> None:
    fields = validation_fields(_errors({"pet": {"kind": "cat"}, "colour": 1, f"{SECRET}!": 2}))
    assert [f["loc"] for f in fields] == [["colour"], ["?"]]


def test_messages_without_the_input_are_kept() -> None:
    fields = validation_fields(_errors({"pet": {"kind": "cat"}, "count": SECRET}))
    assert fields == [
        {
            "loc": ["count"],
            "type": "int_parsing",
            "message": "Input should be a valid integer, unable to parse string as an integer",
        }
    ]
