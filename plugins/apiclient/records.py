"""The base of response records (pydantic v2): validated, unknown keys kept, the item as sent kept.

Unknown keys are kept (``extra``) so a newer API does not break the sync. Every record also keeps
the item exactly as the API sent it (``record.raw``): the pipeline stages that. An API's records
add their own conventions (Code42: camelCase aliases, epoch-ms times).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr, TypeAdapter


class Record(BaseModel):
    model_config = ConfigDict(extra="allow")

    _raw: dict = PrivateAttr(default_factory=dict)

    @classmethod
    def from_item(cls, item: dict):
        record = cls.model_validate(item)
        record._raw = item
        return record

    @property
    def raw(self) -> dict:
        """The item as the API returned it."""
        return self._raw

    @classmethod
    def from_items(cls, items: list[Any]) -> list:
        """A page of items validated at once (one pydantic-core call); a ``ValidationError``'s
        locations start with the item's index."""
        records = _list_adapter(cls).validate_python(items)
        for record, item in zip(records, items, strict=True):
            record._raw = item
        return records


@cache
def _list_adapter(model: type[Record]) -> TypeAdapter:
    return TypeAdapter(list[model])
