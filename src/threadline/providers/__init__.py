"""Model providers: one streaming chat interface over OpenAI-compatible servers and Anthropic."""

from .base import (
    ChatEvent,
    ChatMessage,
    ChatProvider,
    ChatRequest,
    Finish,
    ProviderError,
    RetryPolicy,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
    ToolSpec,
    Usage,
)
from .models import context_window, supports_images
from .router import ModelNotRoutable, ProviderRouter, from_settings

__all__ = [
    "ChatEvent",
    "ChatMessage",
    "ChatProvider",
    "ChatRequest",
    "Finish",
    "ModelNotRoutable",
    "ProviderError",
    "ProviderRouter",
    "RetryPolicy",
    "TextDelta",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallStart",
    "ToolSpec",
    "Usage",
    "context_window",
    "from_settings",
    "supports_images",
]
