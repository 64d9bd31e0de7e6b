"""Generator backends behind one interface, :class:`~.base.SynthesisBackend`.

- :class:`RuleBasedBackend`: offline controlled edits of a positive seed (tests, demo).
- :class:`OpenAIChatBackend`: any OpenAI-compatible chat-completions server (vLLM, TGI, hosted APIs).
- :class:`TransformersBackend`: a local VLM (sees the images) or text LLM (rewrites reference texts).
"""

from .base import GenerationResult, LevelOutput, PromptedBackend, SourceItem, SynthesisBackend
from .openai_http import OpenAIChatBackend
from .rule_based import RuleBasedBackend
from .transformers_local import TransformersBackend

__all__ = [
    "GenerationResult",
    "LevelOutput",
    "OpenAIChatBackend",
    "PromptedBackend",
    "RuleBasedBackend",
    "SourceItem",
    "SynthesisBackend",
    "TransformersBackend",
]
