"""Request bodies, validated the way OpenAI validated them (unknown fields and wrong types are 400s)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from ..fields import FUNCTION_NAME, JSONObject, Metadata, Strict, WithMetadata, check_metadata  # noqa: F401

# -- tools -------------------------------------------------------------------------------------------------------


class RankingOptions(Strict):
    ranker: Literal["auto", "default_2024_08_21"] = "auto"
    score_threshold: Annotated[float, Field(ge=0, le=1)] = 0.0


class FileSearchOptions(Strict):
    max_num_results: Annotated[int, Field(ge=1, le=50)] | None = None
    ranking_options: RankingOptions | None = None


class FunctionDef(Strict):
    name: str
    description: str | None = None
    parameters: JSONObject | None = None
    strict: bool | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not FUNCTION_NAME.match(value):
            raise ValueError(
                f"Invalid 'function.name': string does not match pattern. Expected a string that matches the "
                f"pattern '^[a-zA-Z0-9_-]{{1,64}}$', but got '{value}' instead."
            )
        return value


class CodeInterpreterTool(Strict):
    type: Literal["code_interpreter"]


class FileSearchTool(Strict):
    type: Literal["file_search"]
    file_search: FileSearchOptions | None = None


class FunctionTool(Strict):
    type: Literal["function"]
    function: FunctionDef


Tool = Annotated[CodeInterpreterTool | FileSearchTool | FunctionTool, Field(discriminator="type")]


# -- tool resources ----------------------------------------------------------------------------------------------


class AutoChunking(Strict):
    type: Literal["auto"]


class StaticChunkingParams(Strict):
    max_chunk_size_tokens: Annotated[int, Field(ge=100, le=4096)]
    chunk_overlap_tokens: Annotated[int, Field(ge=0)]

    @model_validator(mode="after")
    def _overlap(self) -> StaticChunkingParams:
        if self.chunk_overlap_tokens > self.max_chunk_size_tokens // 2:
            raise ValueError(
                "Invalid 'chunking_strategy.static.chunk_overlap_tokens': chunk_overlap_tokens must be less than "
                "or equal to half of max_chunk_size_tokens."
            )
        return self


class StaticChunking(Strict):
    type: Literal["static"]
    static: StaticChunkingParams


ChunkingStrategy = Annotated[AutoChunking | StaticChunking, Field(discriminator="type")]


class CodeInterpreterResources(Strict):
    file_ids: Annotated[list[str], Field(max_length=20)] = []


class VectorStoreHelper(WithMetadata):
    file_ids: Annotated[list[str], Field(max_length=10000)] = []
    chunking_strategy: ChunkingStrategy | None = None


class FileSearchResources(Strict):
    vector_store_ids: Annotated[list[str], Field(max_length=1)] | None = None
    vector_stores: Annotated[list[VectorStoreHelper], Field(max_length=1)] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> FileSearchResources:
        if self.vector_store_ids and self.vector_stores:
            raise ValueError(
                "Invalid 'tool_resources.file_search': only one of 'vector_store_ids' or 'vector_stores' can be "
                "provided."
            )
        return self


class FileSearchResourcesIds(Strict):
    vector_store_ids: Annotated[list[str], Field(max_length=1)] | None = None


class ToolResources(Strict):
    code_interpreter: CodeInterpreterResources | None = None
    file_search: FileSearchResources | None = None


class ToolResourcesIds(Strict):
    """Modify requests (and createThreadAndRun's top level) accept only vector_store_ids."""

    code_interpreter: CodeInterpreterResources | None = None
    file_search: FileSearchResourcesIds | None = None


# -- response format ---------------------------------------------------------------------------------------------


class JsonSchemaSpec(Strict):
    name: Annotated[str, Field(max_length=64)]
    description: str | None = None
    schema_: JSONObject | None = Field(default=None, alias="schema")
    strict: bool | None = None

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


class TextFormat(Strict):
    type: Literal["text"]


class JsonObjectFormat(Strict):
    type: Literal["json_object"]


class JsonSchemaFormat(Strict):
    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec


ResponseFormat = (
    Literal["auto"] | Annotated[TextFormat | JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")]
)

ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]

# -- assistants --------------------------------------------------------------------------------------------------


class AssistantFields(WithMetadata):
    name: Annotated[str, Field(max_length=256)] | None = None
    description: Annotated[str, Field(max_length=512)] | None = None
    instructions: Annotated[str, Field(max_length=256000)] | None = None
    tools: Annotated[list[Tool], Field(max_length=128)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: ReasoningEffort | None = None


class AssistantCreate(AssistantFields):
    model: Annotated[str, Field(min_length=1, max_length=256)]
    tool_resources: ToolResources | None = None


class AssistantModify(AssistantFields):
    model: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    tool_resources: ToolResourcesIds | None = None


# -- messages ----------------------------------------------------------------------------------------------------


class ImageFileRef(Strict):
    file_id: str
    detail: Literal["auto", "low", "high"] | None = None


class ImageUrlRef(Strict):
    url: Annotated[str, Field(min_length=1, max_length=65536)]
    detail: Literal["auto", "low", "high"] | None = None


class TextPart(Strict):
    type: Literal["text"]
    text: Annotated[str, Field(min_length=1)]


class ImageFilePart(Strict):
    type: Literal["image_file"]
    image_file: ImageFileRef


class ImageUrlPart(Strict):
    type: Literal["image_url"]
    image_url: ImageUrlRef


ContentPart = Annotated[TextPart | ImageFilePart | ImageUrlPart, Field(discriminator="type")]


class AttachmentTool(Strict):
    type: Literal["code_interpreter", "file_search"]


class Attachment(Strict):
    file_id: str
    tools: list[AttachmentTool] = []


class MessageCreate(WithMetadata):
    role: Literal["user", "assistant"]
    content: (
        Annotated[str, Field(min_length=1, max_length=256000)]
        | Annotated[list[ContentPart], Field(min_length=1, max_length=100)]
    )
    attachments: Annotated[list[Attachment], Field(max_length=100)] | None = None


class MessageModify(WithMetadata):
    pass


# -- threads -----------------------------------------------------------------------------------------------------


class ThreadCreate(WithMetadata):
    messages: Annotated[list[MessageCreate], Field(max_length=100)] | None = None
    tool_resources: ToolResources | None = None


class ThreadModify(WithMetadata):
    tool_resources: ToolResourcesIds | None = None


# -- uploads -----------------------------------------------------------------------------------------------------


class ExpiresAfter(Strict):
    anchor: Literal["created_at"]
    seconds: Annotated[int, Field(ge=3600, le=2592000)]


class UploadCreate(Strict):
    filename: Annotated[str, Field(min_length=1, max_length=255)]
    purpose: Literal["assistants", "batch", "fine-tune", "vision", "user_data", "evals"]
    bytes: Annotated[int, Field(ge=1, le=8 * 1024**3)]
    mime_type: Annotated[str, Field(min_length=1, max_length=255)]
    expires_after: ExpiresAfter | None = None


class UploadComplete(Strict):
    part_ids: Annotated[list[str], Field(min_length=1)]
    md5: str | None = None


# -- runs --------------------------------------------------------------------------------------------------------


class TruncationStrategy(Strict):
    type: Literal["auto", "last_messages"]
    last_messages: Annotated[int, Field(ge=1)] | None = None


class ToolChoiceFunction(Strict):
    name: str


class ToolChoiceObject(Strict):
    type: Literal["function", "code_interpreter", "file_search"]
    function: ToolChoiceFunction | None = None

    @model_validator(mode="after")
    def _function(self) -> ToolChoiceObject:
        if self.type == "function" and self.function is None:
            raise ValueError("Missing required parameter: 'tool_choice.function'.")
        return self


ToolChoice = Literal["none", "auto", "required"] | ToolChoiceObject


class RunOptions(WithMetadata):
    model: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    instructions: Annotated[str, Field(max_length=256000)] | None = None
    tools: Annotated[list[Tool], Field(max_length=20)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    stream: bool | None = None
    max_prompt_tokens: Annotated[int, Field(ge=256)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=256)] | None = None
    truncation_strategy: TruncationStrategy | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None


class RunCreate(RunOptions):
    assistant_id: str
    reasoning_effort: ReasoningEffort | None = None
    additional_instructions: Annotated[str, Field(max_length=256000)] | None = None
    additional_messages: Annotated[list[MessageCreate], Field(max_length=100)] | None = None


class ThreadAndRunCreate(RunOptions):
    assistant_id: str
    thread: ThreadCreate | None = None
    tool_resources: ToolResourcesIds | None = None


class ToolOutput(Strict):
    tool_call_id: str
    output: str = ""


class SubmitToolOutputs(Strict):
    tool_outputs: list[ToolOutput]
    stream: bool | None = None


class RunModify(WithMetadata):
    pass
