"""Four-level semi-synthetic data for training UniFilter: real images, generated texts at four quality levels.

- :mod:`.levels`: the level definitions (0 easy negative .. 3 positive) and their requirements.
- :mod:`.prompts`, :mod:`.parsing`: prompt templates and the strict JSON reply parser.
- :mod:`.backends`: generators behind one interface: rule-based (offline), OpenAI-compatible HTTP,
  local transformers models.
- :mod:`.bundled`: the bundled mini set (photographs from scikit-image / scikit-learn, our captions).
- :mod:`.records`: ``SynthRecord``, the one record of a caption or document version (``kind`` is
  ``"caption"`` or ``"document"``), and its JSONL form.
- :mod:`.runner`: resumable generation into a folder of JSONL records + images (:mod:`.image_bytes`).
- :mod:`.cli`: the ``unifilter-hf synth`` subcommand.
- For the ``UniFilterSynthetic`` builder: :mod:`.dataset_rows` (records of a source), :mod:`.released`
  (the released JSON layout), :mod:`.splits` (train/validation by group), :mod:`.dataset_schema`
  (configs, features, record -> example).
- :mod:`.shapes_world`: a procedurally generated, learnable four-level caption set (coloured shapes).

Example:
    >>> import tempfile
    >>> from unifilter_hf.synthesis import RuleBasedBackend, bundled_items, synthesize
    >>> report = synthesize(bundled_items("both"), RuleBasedBackend(seed=0), tempfile.mkdtemp())
    >>> report.failed
    0
"""

from .backends import (
    GenerationResult,
    LevelOutput,
    OpenAIChatBackend,
    PromptedBackend,
    RuleBasedBackend,
    SourceItem,
    SynthesisBackend,
    TransformersBackend,
)
from .bundled import bundled_items, bundled_photo
from .levels import LEVEL_NAMES, Level, level_name, requirement
from .parsing import MalformedReply, parse_levels
from .prompts import PROMPT_VERSION, build_messages
from .records import Provenance, SynthRecord, read_records, record_to_sample
from .runner import SynthReport, synthesize
from .shapes_world import SHAPES_EDIT_TYPES, shapes_world_dataset
from .shapes_world_tokenizer import shapes_world_tokenizer
from .sources import dataset_items, folder_items

__all__ = [
    "LEVEL_NAMES",
    "PROMPT_VERSION",
    "SHAPES_EDIT_TYPES",
    "GenerationResult",
    "Level",
    "LevelOutput",
    "MalformedReply",
    "OpenAIChatBackend",
    "PromptedBackend",
    "Provenance",
    "RuleBasedBackend",
    "SourceItem",
    "SynthRecord",
    "SynthReport",
    "SynthesisBackend",
    "TransformersBackend",
    "build_messages",
    "bundled_items",
    "bundled_photo",
    "dataset_items",
    "folder_items",
    "level_name",
    "parse_levels",
    "read_records",
    "record_to_sample",
    "requirement",
    "shapes_world_dataset",
    "shapes_world_tokenizer",
    "synthesize",
]
