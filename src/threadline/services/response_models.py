"""Request bodies of the Responses and Conversations APIs, validated the way OpenAI validates them: unknown fields
and wrong types are 400s naming the field (api/errors.py words them), sizes are the spec's.

Input items (`InputItem`) are shared by `POST /v1/responses` (`input`), `POST /v1/responses/input_tokens` and the
Conversations API (`items`). Accepted item types: messages (with or without `type`), function_call,
function_call_output, reasoning, file_search_call, code_interpreter_call, compaction and item_reference; other
item types of the spec (web search, computer, MCP, shell, ...) are refused with a 400 naming the supported ones.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from ..fields import FUNCTION_NAME, JSONObject, Strict, WithMetadata, check_metadata
from ..retrieval.filters import validate_filter

MAX_TEXT = 10_485_760  # characters of a string input or a function call output (spec)
MAX_ITEMS_PER_REQUEST = 20  # items per POST /conversations or /conversations/{id}/items (spec)
INCLUDABLE = (
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
    "reasoning.encrypted_content",
    "message.output_text.logprobs",
)
Include = Literal[
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
    "reasoning.encrypted_content",
    "message.output_text.logprobs",
]
ItemStatus = Literal["in_progress", "completed", "incomplete"]
Id = Annotated[str, Field(min_length=1, max_length=128)]


# -- content parts -----------------------------------------------------------------------------------------------


class InputText(Strict):
    type: Literal["input_text"]
    text: Annotated[str, Field(max_length=MAX_TEXT)]


class InputImage(Strict):
    type: Literal["input_image"]
    image_url: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)] | None = None
    file_id: Id | None = None
    detail: Literal["auto", "low", "high", "original"] = "auto"  # required by the schema, omitted by clients

    @model_validator(mode="after")
    def _source(self) -> InputImage:
        if self.image_url is None and self.file_id is None:
            raise ValueError("Invalid input image: one of 'image_url' or 'file_id' must be provided.")
        return self


class InputFile(Strict):
    type: Literal["input_file"]
    file_id: Id | None = None
    file_url: Annotated[str, Field(min_length=1, max_length=65536)] | None = None
    file_data: Annotated[str, Field(max_length=MAX_TEXT)] | None = None
    filename: Annotated[str, Field(max_length=1024)] | None = None
    detail: Literal["auto", "low", "high"] | None = None

    @model_validator(mode="after")
    def _source(self) -> InputFile:
        if self.file_id is None and self.file_url is None and self.file_data is None:
            raise ValueError("Invalid input file: one of 'file_id', 'file_url' or 'file_data' must be provided.")
        return self


class FileCitation(Strict):
    type: Literal["file_citation"]
    file_id: Id
    filename: str
    index: Annotated[int, Field(ge=0)]


class UrlCitation(Strict):
    type: Literal["url_citation"]
    url: Annotated[str, Field(max_length=65536)]
    start_index: Annotated[int, Field(ge=0)]
    end_index: Annotated[int, Field(ge=0)]
    title: str


class ContainerFileCitation(Strict):
    type: Literal["container_file_citation"]
    container_id: Id
    file_id: Id
    filename: str
    start_index: Annotated[int, Field(ge=0)]
    end_index: Annotated[int, Field(ge=0)]


class FilePathAnnotation(Strict):
    type: Literal["file_path"]
    file_id: Id
    index: Annotated[int, Field(ge=0)]


Annotation = Annotated[
    FileCitation | UrlCitation | ContainerFileCitation | FilePathAnnotation, Field(discriminator="type")
]


class OutputText(Strict):
    type: Literal["output_text"]
    text: Annotated[str, Field(max_length=MAX_TEXT)]
    annotations: Annotated[list[Annotation], Field(max_length=4096)] = []
    logprobs: Annotated[list[JSONObject], Field(max_length=65536)] | None = None


class Refusal(Strict):
    type: Literal["refusal"]
    refusal: Annotated[str, Field(max_length=MAX_TEXT)]


ContentPart = Annotated[InputText | InputImage | InputFile | OutputText | Refusal, Field(discriminator="type")]
InputPart = Annotated[InputText | InputImage | InputFile, Field(discriminator="type")]
OUTPUT_PARTS = ("output_text", "refusal")
INPUT_PARTS = ("input_text", "input_image", "input_file")


# -- items -------------------------------------------------------------------------------------------------------


class MessageItem(Strict):
    """EasyInputMessage, InputMessage and OutputMessage in one: `type` may be left out, `content` may be a string."""

    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: Annotated[str, Field(max_length=MAX_TEXT)] | Annotated[list[ContentPart], Field(max_length=1024)]
    id: Id | None = None
    status: ItemStatus | None = None
    phase: Literal["commentary", "final_answer"] | None = None

    @model_validator(mode="after")
    def _parts_fit_role(self) -> MessageItem:
        if isinstance(self.content, str):
            return self
        for i, part in enumerate(self.content):
            if self.role != "assistant" and part.type in OUTPUT_PARTS:
                raise ValueError(
                    f"Invalid value: '{part.type}'. Supported values are: 'input_text', 'input_image', and "
                    f"'input_file'. (content[{i}].type of a '{self.role}' message)"
                )
            if self.role == "assistant" and part.type not in (*OUTPUT_PARTS, "input_text"):
                raise ValueError(
                    f"Invalid value: '{part.type}'. Supported values are: 'output_text' and 'refusal'. "
                    f"(content[{i}].type of an 'assistant' message)"
                )
        return self


class FunctionCallItem(Strict):
    type: Literal["function_call"]
    call_id: Annotated[str, Field(min_length=1, max_length=64)]
    name: Annotated[str, Field(min_length=1, max_length=128)]
    arguments: Annotated[str, Field(max_length=MAX_TEXT)]
    id: Id | None = None
    status: ItemStatus | None = None
    namespace: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class FunctionCallOutputItem(Strict):
    type: Literal["function_call_output"]
    # nullable and optional in the schema, but an output that names no call cannot be paired (contract §8.12)
    call_id: Annotated[str, Field(min_length=1, max_length=64)]
    output: Annotated[str, Field(max_length=MAX_TEXT)] | Annotated[list[InputPart], Field(max_length=1024)]
    id: Id | None = None
    status: ItemStatus | None = None
    name: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    namespace: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class SummaryText(Strict):
    type: Literal["summary_text"]
    text: Annotated[str, Field(max_length=MAX_TEXT)]


class ReasoningText(Strict):
    type: Literal["reasoning_text"]
    text: Annotated[str, Field(max_length=MAX_TEXT)]


class ReasoningItem(Strict):
    type: Literal["reasoning"]
    id: Id | None = None
    summary: Annotated[list[SummaryText], Field(max_length=1024)]
    content: Annotated[list[ReasoningText], Field(max_length=1024)] | None = None
    encrypted_content: Annotated[str, Field(max_length=2 * MAX_TEXT)] | None = None
    status: ItemStatus | None = None


class FileSearchResult(Strict):
    file_id: Id | None = None
    text: Annotated[str, Field(max_length=MAX_TEXT)] | None = None
    filename: str | None = None
    attributes: JSONObject | None = None
    score: float | None = None


class FileSearchCallItem(Strict):
    type: Literal["file_search_call"]
    id: Id  # a replayed file_search_call keeps its id (contract §2.3)
    status: Literal["in_progress", "searching", "completed", "incomplete", "failed"]
    queries: Annotated[list[Annotated[str, Field(max_length=4096)]], Field(max_length=64)]
    results: Annotated[list[FileSearchResult], Field(max_length=1024)] | None = None


class LogsOutput(Strict):
    type: Literal["logs"]
    logs: Annotated[str, Field(max_length=MAX_TEXT)]


class ImageOutput(Strict):
    type: Literal["image"]
    url: Annotated[str, Field(max_length=MAX_TEXT)]


class CodeInterpreterCallItem(Strict):
    type: Literal["code_interpreter_call"]
    id: Id
    status: Literal["in_progress", "completed", "incomplete", "interpreting", "failed"]
    container_id: Id
    code: Annotated[str, Field(max_length=MAX_TEXT)] | None = None
    outputs: (
        Annotated[list[Annotated[LogsOutput | ImageOutput, Field(discriminator="type")]], Field(max_length=1024)] | None
    ) = None


class CompactionItem(Strict):
    type: Literal["compaction"]
    id: Id | None = None
    encrypted_content: Annotated[str, Field(max_length=2 * MAX_TEXT)]
    created_by: Annotated[str, Field(max_length=256)] | None = None


class ItemReference(Strict):
    type: Literal["item_reference"] | None = "item_reference"
    id: Id


def _item_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        kind = value.get("type", "message")
        return "message" if kind is None and "role" in value else kind
    return getattr(value, "type", None)


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[ReasoningItem, Tag("reasoning")]
    | Annotated[FileSearchCallItem, Tag("file_search_call")]
    | Annotated[CodeInterpreterCallItem, Tag("code_interpreter_call")]
    | Annotated[CompactionItem, Tag("compaction")]
    | Annotated[ItemReference, Tag("item_reference")],
    Discriminator(_item_kind),
]


# -- conversations -----------------------------------------------------------------------------------------------


class ConversationCreate(WithMetadata):
    items: Annotated[list[InputItem], Field(max_length=MAX_ITEMS_PER_REQUEST)] | None = None


class ConversationUpdate(Strict):
    metadata: dict[str, Any] | None  # required; null clears it (the SDK types it Optional)

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_metadata(value)


class ConversationItemsCreate(Strict):
    items: Annotated[list[InputItem], Field(min_length=1, max_length=MAX_ITEMS_PER_REQUEST)]


# -- tools -------------------------------------------------------------------------------------------------------


class FunctionTool(Strict):
    type: Literal["function"]
    name: str
    description: Annotated[str, Field(max_length=65536)] | None = None
    parameters: JSONObject | None = None
    strict: bool | None = None
    # accepted and echoed; threadline does not defer tool loading
    defer_loading: bool | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not FUNCTION_NAME.match(value):
            raise ValueError(
                f"Invalid 'name': string does not match pattern. Expected a string that matches the pattern "
                f"'^[a-zA-Z0-9_-]{{1,64}}$', but got '{value}' instead."
            )
        return value


class HybridSearch(Strict):
    embedding_weight: Annotated[float, Field(ge=0)]
    text_weight: Annotated[float, Field(ge=0)]


class FileSearchRanking(Strict):
    ranker: Literal["auto", "default-2024-11-15"] = "auto"
    score_threshold: Annotated[float, Field(ge=0, le=1)] = 0.0
    hybrid_search: HybridSearch | None = None


class FileSearchTool(Strict):
    type: Literal["file_search"]
    vector_store_ids: Annotated[list[Id], Field(max_length=16)]
    max_num_results: Annotated[int, Field(ge=1, le=50)] | None = None
    ranking_options: FileSearchRanking | None = None
    filters: dict[str, Any] | None = None

    @field_validator("filters")
    @classmethod
    def _filters(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            validate_filter(value)
        return value


class NetworkPolicy(Strict):
    type: Literal["disabled", "allowlist"]
    allowed_domains: Annotated[list[Annotated[str, Field(max_length=253)]], Field(max_length=256)] | None = None


class AutoContainer(Strict):
    type: Literal["auto"]
    file_ids: Annotated[list[Id], Field(max_length=50)] | None = None
    memory_limit: Literal["1g", "4g", "16g", "64g"] | None = None
    network_policy: NetworkPolicy | None = None


class CodeInterpreterTool(Strict):
    type: Literal["code_interpreter"]
    container: Id | AutoContainer


Tool = Annotated[FunctionTool | FileSearchTool | CodeInterpreterTool, Field(discriminator="type")]


class ToolChoiceFunction(Strict):
    type: Literal["function"]
    name: str


class ToolChoiceHosted(Strict):
    type: Literal["file_search", "code_interpreter"]


class ToolChoiceAllowed(Strict):
    type: Literal["allowed_tools"]
    mode: Literal["auto", "required"]
    tools: Annotated[list[JSONObject], Field(min_length=1, max_length=128)]


ToolChoice = (
    Literal["none", "auto", "required"]
    | Annotated[ToolChoiceFunction | ToolChoiceHosted | ToolChoiceAllowed, Field(discriminator="type")]
)


# -- text and reasoning ------------------------------------------------------------------------------------------


class TextFormatText(Strict):
    type: Literal["text"]


class TextFormatJsonObject(Strict):
    type: Literal["json_object"]


class TextFormatJsonSchema(Strict):
    """Flat here (name, schema, strict beside `type`), unlike Chat Completions' and Assistants' nesting."""

    type: Literal["json_schema"]
    name: Annotated[str, Field(min_length=1, max_length=64)]
    schema_: JSONObject = Field(alias="schema")
    description: str | None = None
    strict: bool | None = None

    model_config = Strict.model_config | {"populate_by_name": True}


class TextOptions(Strict):
    format: (
        Annotated[TextFormatText | TextFormatJsonObject | TextFormatJsonSchema, Field(discriminator="type")] | None
    ) = None
    verbosity: Literal["low", "medium", "high"] | None = None


class ReasoningOptions(Strict):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None
    generate_summary: Literal["auto", "concise", "detailed"] | None = None
    context: Literal["auto", "current_turn", "all_turns"] | None = None
    mode: str | None = None


class ConversationRef(Strict):
    id: Id


class PromptRef(Strict):
    id: Id
    version: str | None = None
    variables: JSONObject | None = None


class StreamOptions(Strict):
    include_obfuscation: bool | None = None


class CompactionConfig(Strict):
    type: Literal["compaction"]
    compact_threshold: Annotated[int, Field(ge=1000)] | None = None


class PromptCacheOptions(Strict):
    ttl: str | None = None


# -- responses ---------------------------------------------------------------------------------------------------

Input = Annotated[str, Field(max_length=MAX_TEXT)] | Annotated[list[InputItem], Field(max_length=100_000)]


class ContextFields(Strict):
    """What decides a response's prompt: shared by POST /v1/responses and POST /v1/responses/input_tokens."""

    model: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    input: Input | None = None
    instructions: Annotated[str, Field(max_length=MAX_TEXT)] | None = None
    previous_response_id: Id | None = None
    conversation: Id | ConversationRef | None = None
    tools: Annotated[list[Tool], Field(max_length=128)] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    text: TextOptions | None = None
    reasoning: ReasoningOptions | None = None
    truncation: Literal["auto", "disabled"] | None = None

    @model_validator(mode="after")
    def _one_state_source(self) -> ContextFields:
        if self.previous_response_id is not None and self.conversation is not None:
            raise ValueError(
                "Mutually exclusive parameters: 'previous_response_id' and 'conversation'. Ensure you are only "
                "providing one of these parameters."
            )
        return self

    @property
    def conversation_id(self) -> str | None:
        conv = self.conversation
        return conv.id if isinstance(conv, ConversationRef) else conv


class InputTokensRequest(ContextFields):
    """POST /v1/responses/input_tokens (TokenCountsBody)."""

    personality: str | None = None


class ResponseCreate(ContextFields, WithMetadata):
    """POST /v1/responses (CreateResponse): every field of the spec, validated; nothing else is accepted."""

    store: bool | None = None
    background: bool | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    include: Annotated[list[Include], Field(max_length=len(INCLUDABLE))] | None = None
    max_output_tokens: Annotated[int, Field(ge=16)] | None = None
    max_tool_calls: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    context_management: Annotated[list[CompactionConfig], Field(min_length=1)] | None = None
    prompt: PromptRef | None = None
    safety_identifier: Annotated[str, Field(max_length=64)] | None = None
    prompt_cache_key: Annotated[str, Field(max_length=1024)] | None = None
    prompt_cache_retention: Literal["in_memory", "24h"] | None = None
    prompt_cache_options: PromptCacheOptions | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority", "fast", "ultrafast"] | None = None
    user: Annotated[str, Field(max_length=256)] | None = None
    moderation: JSONObject | None = None

    @model_validator(mode="after")
    def _combinations(self) -> ResponseCreate:
        if self.background and self.store is False:
            raise ValueError("Invalid value for 'store': false. Background responses require 'store' to be true.")
        if self.stream_options is not None and not self.stream:
            raise ValueError(
                "Invalid value for 'stream_options': 'stream_options' is only allowed when 'stream' is true."
            )
        return self
