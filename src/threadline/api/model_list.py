"""/v1/models: the models the configured providers and routes serve (see providers/listing.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from .common import json, runtime
from .errors import APIError

router = APIRouter(prefix="/v1/models", tags=["models"])


def model_not_found(model_id: str) -> APIError:
    return APIError(
        404, f"The model '{model_id}' does not exist or you do not have access to it.", code="model_not_found"
    )


@router.get("")
async def list_models(request: Request) -> Response:
    return json({"object": "list", "data": await runtime(request).model_lister.list()})


@router.get("/{model_id:path}")
async def get_model(model_id: str, request: Request) -> Response:
    model = await runtime(request).model_lister.get(model_id)
    if model is None:
        raise model_not_found(model_id)
    return json(model)
