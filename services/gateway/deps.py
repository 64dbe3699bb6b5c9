"""Request dependencies: the runtime built at start-up."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from lookalike.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
# Row ids are signed 64-bit in SQLite and Postgres: a larger number names no row (SQLite's driver would raise on it).
MAX_ROW_ID = 2**63 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
