"""unifilter-hf: UniFilter multimodal data-quality scoring for the Hugging Face ecosystem.

Importing the package registers the `unifilter` model type with the Auto classes (config, model, sequence
classification, processor), so saved checkpoints load with `AutoModel.from_pretrained` and friends.
"""

from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoProcessor

from .configuration_unifilter import UniFilterConfig
from .levels import LEVEL_NAMES
from .modeling_unifilter import QualityScoringOutput, UniFilterForQualityScoring
from .official import register_official_auto_classes
from .pipeline_unifilter import MultimodalQualityScoringPipeline, register_pipeline
from .processing_unifilter import UniFilterProcessor
from .quality_metrics import metrics_path  # local evaluate module: evaluate.load(metrics_path)
from .sample import Sample, SampleError
from .sources import undecode_images
from .version import __version__

AutoConfig.register(UniFilterConfig.model_type, UniFilterConfig, exist_ok=True)
AutoModel.register(UniFilterConfig, UniFilterForQualityScoring, exist_ok=True)
AutoModelForSequenceClassification.register(UniFilterConfig, UniFilterForQualityScoring, exist_ok=True)
AutoProcessor.register(UniFilterConfig, UniFilterProcessor, exist_ok=True)

# Saved folders also carry the code (auto_map + copied modules) so they load with trust_remote_code=True
# where unifilter_hf is not installed.
UniFilterConfig.register_for_auto_class()
UniFilterForQualityScoring.register_for_auto_class("AutoModel")
UniFilterProcessor.register_for_auto_class()
# Official LLaVA-layout checkpoints (llava_qwen / llava_qwen3) load through the same Auto classes.
register_official_auto_classes()
register_pipeline()

__all__ = [
    "LEVEL_NAMES",
    "MultimodalQualityScoringPipeline",
    "QualityScoringOutput",
    "Sample",
    "SampleError",
    "UniFilterConfig",
    "UniFilterForQualityScoring",
    "UniFilterProcessor",
    "__version__",
    "metrics_path",
    "undecode_images",
]
