"""HTTP routes, one module per API family."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from incydr_sandbox.state import SandboxState


def get_state(request: Request) -> SandboxState:
    return request.app.state.sandbox


State = Annotated[SandboxState, Depends(get_state)]  # a route parameter: the running sandbox's state


def page_slice(items, number: int, size: int):
    return items[number * size:(number + 1) * size]
