"""Validation of server responses against the official OpenAI OpenAPI spec.

The spec is loaded once per process. Its schemas are JSON Schema 2020-12 plus a few OpenAPI 3.0 leftovers
(`nullable: true`), which are translated into their JSON Schema meaning before use. Where the spec is wrong relative
to the wire contract (docs: assistants-contract.md), a narrowly scoped, documented patch is applied in SPEC_PATCHES.

Public API:
    validate(schema_name, obj)            raise SchemaMismatch unless obj matches components/schemas/<schema_name>
    ResponseValidator                     httpx/httpx2 response hook validating every JSON response of the server

The spec is read from ../shared/openai-openapi/openapi.yaml next to the repository, or $THREADLINE_OPENAPI_SPEC;
without it, validation raises SpecMissing saying where it looked.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import referencing
import referencing.jsonschema
import yaml

REPO = Path(__file__).resolve().parents[2]
# The reference material lives next to the checkout (CI and developers clone it to ../shared).
SHARED_DIR = REPO.parent / "shared"
SPEC_PATH = Path(os.environ.get("THREADLINE_OPENAPI_SPEC") or SHARED_DIR / "openai-openapi" / "openapi.yaml")
SPEC_URI = "urn:openai:openapi"
API_PREFIX = "/v1"


class SchemaMismatch(AssertionError):
    """A JSON body does not match the spec schema it should match."""


class SpecMissing(FileNotFoundError):
    """The OpenAPI spec file is not where the tests look for it."""


def _require_spec() -> None:
    if not SPEC_PATH.is_file():
        raise SpecMissing(
            f"OpenAI OpenAPI spec not found at {SPEC_PATH}. The tests validate every response against it: "
            f"put the reference material in {SHARED_DIR} (the `shared` directory next to the repository, "
            "holding openai-openapi/openapi.yaml), or point THREADLINE_OPENAPI_SPEC at the file."
        )


def _null_or(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _translate_nullable(node: Any) -> Any:
    """OpenAPI 3.0 `nullable: true` (alone, next to a $ref, or inside an allOf) means "or null"."""
    if isinstance(node, list):
        return [_translate_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    nullable = node.pop("nullable", None) is True
    all_of = node.get("allOf")
    if isinstance(all_of, list) and any(isinstance(s, dict) and s.get("nullable") is True for s in all_of):
        # allOf: [{$ref: X}, {nullable: true}] is "X or null"; the marker must not become "anything or null".
        nullable = True
        node["allOf"] = [{k: v for k, v in s.items() if k != "nullable"} if isinstance(s, dict) else s for s in all_of]
    node = {key: _translate_nullable(value) for key, value in node.items()}
    return _null_or(node) if nullable else node


def _allow_null(*pointer: str | int) -> Callable[[dict[str, Any]], None]:
    def patch(spec: dict[str, Any]) -> None:
        parent = spec["components"]["schemas"]
        for key in pointer[:-1]:
            parent = parent[key]
        parent[pointer[-1]] = _null_or(parent[pointer[-1]])

    return patch


def _list_ids_nullable(spec: dict[str, Any]) -> None:
    for name, schema in spec["components"]["schemas"].items():
        if (name.startswith("List") and name.endswith("Response")) or name in (
            "ConversationItemList",
            "ResponseItemList",
            "ContainerListResource",
            "ContainerFileListResource",
        ):
            props = schema.get("properties", {})
            for key in ("first_id", "last_id"):
                if key in props:
                    props[key] = _null_or(props[key])


def _response_delete_body(spec: dict[str, Any]) -> None:
    ok = spec["paths"]["/responses/{response_id}"]["delete"]["responses"]["200"]
    ok["content"] = {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["id", "object", "deleted"],
                "properties": {
                    "id": {"type": "string"},
                    "object": {"type": "string", "enum": ["response"]},
                    "deleted": {"type": "boolean"},
                },
            }
        }
    }


def _container_delete_bodies(spec: dict[str, Any]) -> None:
    for path, name in (
        ("/containers/{container_id}", "container.deleted"),
        ("/containers/{container_id}/files/{file_id}", "container.file.deleted"),
    ):
        ok = spec["paths"][path]["delete"]["responses"]["200"]
        ok["content"] = {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["id", "object", "deleted"],
                    "properties": {
                        "id": {"type": "string"},
                        "object": {"type": "string", "enum": [name]},
                        "deleted": {"type": "boolean", "enum": [True]},
                    },
                }
            }
        }


# Each entry: why the spec is wrong relative to the contract, and the narrow fix.
SPEC_PATCHES: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
    # Contract §4.1 / §8 (and responses-contract §9): an empty page has no first or last item, so first_id/last_id
    # are null, in the Assistants lists and in the conversation and response item lists alike.
    ("List*Response.first_id/last_id may be null on an empty page", _list_ids_nullable),
    # Contract §2.10: `expires_at` is int|null (null = never expires); the SDK's FileObject types it Optional[int].
    ("OpenAIFile.expires_at may be null", _allow_null("OpenAIFile", "properties", "expires_at")),
    # Deprecated field, Optional[str] in the SDK; null when there are no details.
    ("OpenAIFile.status_details may be null", _allow_null("OpenAIFile", "properties", "status_details")),
    # responses-contract §2.2 / §3.3 (a) / §5.1: usage is null until the response ends (live `response.created`
    # and `in_progress` carry `usage: null`; the SDK types it Optional).
    ("Response.usage may be null before the end", _allow_null("Response", "allOf", 2, "properties", "usage")),
    # responses-contract §1.1 / §8.14: DELETE /responses/{id} declares no body; its example is this object.
    ("DELETE /responses/{id} answers the example's {id, object: response, deleted}", _response_delete_body),
    # responses-contract §1.3 / §2.7: the container deletes declare no body; their examples are these objects.
    (
        "DELETE /containers/{id} (and its files) answer {id, object: container(.file).deleted, deleted}",
        _container_delete_bodies,
    ),
]

_lock = threading.Lock()


CACHE_DIR = REPO / ".cache" / "tests"


def _cache_path() -> Path:
    """Parsing the 3 MB YAML takes about a second; the prepared spec is cached, keyed by its inputs."""
    _require_spec()
    st = SPEC_PATH.stat()
    key = hashlib.sha256(f"{SPEC_PATH.resolve()}|{st.st_size}|{st.st_mtime_ns}|".encode())
    key.update(Path(__file__).read_bytes())
    return CACHE_DIR / f"openapi-{key.hexdigest()[:16]}.pickle"


@functools.cache
def spec() -> dict[str, Any]:
    """The prepared spec (nullable translated, SPEC_PATCHES applied), loaded once per process."""
    cache = _cache_path()
    try:
        with cache.open("rb") as fh:
            return pickle.load(fh)
    except (OSError, pickle.UnpicklingError, EOFError):
        pass
    with SPEC_PATH.open("rb") as fh:
        raw = yaml.load(fh, Loader=yaml.CSafeLoader)
    doc = _translate_nullable(raw)
    for _, patch in SPEC_PATCHES:
        patch(doc)
    try:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(pickle.dumps(doc, protocol=pickle.HIGHEST_PROTOCOL))
        tmp.replace(cache)
    except OSError:
        pass  # read-only checkout: no cache, just slower
    return doc


@functools.cache
def _registry() -> referencing.Registry:
    resource = referencing.Resource.from_contents(spec(), default_specification=referencing.jsonschema.DRAFT202012)
    return referencing.Registry().with_resource(SPEC_URI, resource)


@functools.cache
def _validator(pointer: str) -> jsonschema.Draft202012Validator:
    with _lock:
        return jsonschema.Draft202012Validator({"$ref": f"{SPEC_URI}#{pointer}"}, registry=_registry())


def _check(pointer: str, obj: Any, what: str) -> None:
    validator = _validator(pointer)
    errors = sorted(validator.iter_errors(obj), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if errors:
        lines = [f"{what} does not match {pointer}:"]
        for err in errors[:8]:
            where = "/".join(str(p) for p in err.absolute_path) or "<root>"
            lines.append(f"  at {where}: {err.message[:400]}")
            for sub in (err.context or [])[:4]:
                sub_where = "/".join(str(p) for p in sub.absolute_path) or "<root>"
                lines.append(f"      - {sub_where}: {sub.message[:200]}")
        body = json.dumps(obj)
        lines.append(f"  body: {body[:1500]}{'…' if len(body) > 1500 else ''}")
        raise SchemaMismatch("\n".join(lines))


def validate(schema_name: str, obj: Any) -> None:
    """Validate obj against components/schemas/<schema_name> (e.g. "RunObject", "MessageDeltaObject")."""
    if schema_name not in spec()["components"]["schemas"]:
        raise KeyError(f"no schema {schema_name!r} in the spec")
    _check(f"/components/schemas/{schema_name}", obj, schema_name)


# -- operations ------------------------------------------------------------------------------------------------


@functools.cache
def _routes() -> list[tuple[re.Pattern[str], str]]:
    routes = []
    for template in spec()["paths"]:
        pattern = re.escape(template)
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", pattern)
        routes.append((re.compile(f"^{pattern}$"), template))
    # Literal paths win over templated ones (e.g. /threads/runs over /threads/{thread_id}).
    routes.sort(key=lambda r: r[1].count("{"))
    return routes


def find_operation(method: str, path: str) -> tuple[str, dict[str, Any]] | None:
    """(path template, operation) for an API path such as /v1/threads/thread_x/messages, or None."""
    if path.startswith(API_PREFIX + "/"):
        path = path[len(API_PREFIX) :]
    for pattern, template in _routes():
        if pattern.match(path):
            operation = spec()["paths"][template].get(method.lower())
            if operation is not None:
                return template, operation
    return None


def response_pointer(template: str, method: str, status: int) -> str | None:
    """JSON pointer of the schema for a JSON response of this operation and status, or None if undeclared."""
    responses = spec()["paths"][template][method.lower()]["responses"]
    for key in (str(status), f"{status // 100}XX", "default"):
        content = (responses.get(key) or {}).get("content") or {}
        if "application/json" in content and "schema" in content["application/json"]:
            escaped = template.replace("~", "~0").replace("/", "~1")
            return f"/paths/{escaped}/{method.lower()}/responses/{key}/content/application~1json/schema"
    return None


class ResponseValidator:
    """Response event hook: validates every JSON response of the server against the spec.

    Success bodies are checked against the operation's declared success schema, error bodies (status >= 400)
    against ErrorResponse. A mismatch is recorded in `failures` and raised from the hook (the SDK then reports a
    connection error caused by SchemaMismatch); the test fixture also asserts `failures` is empty at teardown, so a
    mismatch fails the test even when the test expected an exception.
    """

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.checked = 0

    def __call__(self, response: Any) -> None:
        content_type = response.headers.get("content-type", "")
        if not content_type.startswith("application/json"):
            return
        response.read()
        request = response.request
        self.check(request.method, urlsplit(str(request.url)).path, response.status_code, response.content)

    def check(self, method: str, path: str, status: int, content: bytes) -> None:
        what = f"{method} {path} -> {status}"
        try:
            body = json.loads(content)
        except ValueError:
            self._fail(f"{what}: the body is not JSON: {content[:300]!r}")
        if status >= 400:
            self._validate("/components/schemas/ErrorResponse", body, what)
            return
        found = find_operation(method, path)
        if found is None:
            return  # not an OpenAI endpoint (e.g. /health)
        template, _ = found
        pointer = response_pointer(template, method, status)
        if pointer is None:
            self._fail(f"{what}: the spec declares no JSON response for status {status} of {method} {template}")
        self._validate(pointer, body, what)

    def _validate(self, pointer: str, body: Any, what: str) -> None:
        self.checked += 1
        try:
            _check(pointer, body, what)
        except SchemaMismatch as exc:
            self._fail(str(exc))

    def _fail(self, message: str) -> None:
        self.failures.append(message)
        raise SchemaMismatch(message)

    def assert_clean(self) -> None:
        failures, self.failures = self.failures, []
        if failures:
            raise SchemaMismatch(f"{len(failures)} response(s) did not match the spec:\n" + "\n".join(failures))
