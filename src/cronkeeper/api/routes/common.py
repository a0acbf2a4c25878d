"""Pieces every route module shares: documented error responses, request bodies."""

from __future__ import annotations

from typing import Any

from fastapi import Response
from pydantic import BaseModel

from cronkeeper.api.problems import MEDIA_TYPE
from cronkeeper.api.schemas import Problem

_PROBLEM = {"model": Problem, "content": {MEDIA_TYPE: {}}}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the problem statuses a route can answer with."""
    base = (401, 403, 422, 429)
    return {status: {**_PROBLEM, "description": "Problem"} for status in (*base, *statuses)}


def json_body(schema_name: str) -> dict[str, Any]:
    """`openapi_extra` for a route that reads its JSON body itself (to audit bad bodies)."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}
            },
        }
    }


def serialized(model: BaseModel) -> Response:
    """`model` as a JSON response, serialised once by pydantic's own serialiser.

    Returning the model instead makes FastAPI validate it again against the route's
    response model before serialising it: for a page of 50 runs that was two thirds of
    the request. Routes keep `response_model=` so the OpenAPI document is unchanged."""
    return Response(model.model_dump_json(), media_type="application/json")
