"""Official checkpoints load directly (converted in memory) through the public from_pretrained / Auto APIs."""

from __future__ import annotations

import logging

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import CONFIG_MAPPING, AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoProcessor

from tests.test_convert_official import (  # noqa: F401  (hub_cache is a fixture)
    FIXTURE,
    HUB_ID,
    _random_samples,
    copy_tree,
    fixture_cases,
    fixture_samples,
    hub_cache,
    official_layout_checkpoint,
    scores,
)
from unifilter_hf import UniFilterForQualityScoring, UniFilterProcessor
from unifilter_hf.official import (
    OfficialCheckpointError,
    convert_official_checkpoint,
    is_official_checkpoint,
    load_official,
)

MODEL_LOADERS = [AutoModel, AutoModelForSequenceClassification]


@pytest.fixture(autouse=True)
def _require_official_routing():
    # Fail fast: without the routing an official config.json would build a full-size default model (many GB).
    if "llava_qwen" not in CONFIG_MAPPING:
        pytest.fail("official checkpoint routing is not registered (official.register_official_auto_classes)")


@pytest.fixture
def official(tmp_path):
    return copy_tree(FIXTURE / "checkpoint", tmp_path / "official")


def test_direct_load_equals_the_converted_folder_and_the_official_scores(tmp_path, official, caplog):
    native = convert_official_checkpoint(official, tmp_path / "native")
    samples, (_, expected) = fixture_samples(), fixture_cases()
    reference = scores(UniFilterForQualityScoring.from_pretrained(native).eval(),
                       AutoProcessor.from_pretrained(native), samples)

    processor = AutoProcessor.from_pretrained(official)
    assert type(processor) is UniFilterProcessor and processor.tokenizer.bos_token == "<s>"
    for loader in MODEL_LOADERS:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="unifilter_hf"):
            model = loader.from_pretrained(official).eval()
        assert type(model) is UniFilterForQualityScoring
        notes = [r.getMessage() for r in caplog.records if "in memory" in r.getMessage()]
        assert len(notes) == 1 and "\n" not in notes[0]  # one line saying it converts
        for batch_size in (1, 6):
            got = scores(model, processor, samples, batch_size)
            assert got == pytest.approx(reference, abs=1e-6)
            assert got == pytest.approx(expected, abs=1e-4)
    model, processor = load_official(official)
    assert scores(model, processor, samples, 3) == pytest.approx(reference, abs=1e-6)


def test_native_classes_refuse_an_official_checkpoint_with_the_fix(official):
    # The native classes know nothing of the official layout; they name the entry points that do.
    with pytest.raises(ValueError, match=r"'llava_qwen'.*AutoModelForSequenceClassification.*load_official"):
        UniFilterForQualityScoring.from_pretrained(official)
    with pytest.raises(OSError, match="AutoProcessor"):
        UniFilterProcessor.from_pretrained(official)


@pytest.mark.usefixtures("hub_cache")
def test_hub_id_loads_directly():
    model = AutoModel.from_pretrained(HUB_ID).eval()
    processor = AutoProcessor.from_pretrained(HUB_ID)
    assert model.config.name_or_path == HUB_ID
    _, expected = fixture_cases()
    assert scores(model, processor, fixture_samples()) == pytest.approx(expected, abs=1e-4)
    auto = AutoModelForSequenceClassification.from_pretrained(HUB_ID).eval()
    assert scores(auto, processor, fixture_samples()) == pytest.approx(expected, abs=1e-4)


def test_load_options_pass_through(official):
    model = AutoModel.from_pretrained(official, dtype=torch.bfloat16)
    assert model.score.weight.dtype == torch.bfloat16
    processor = AutoProcessor.from_pretrained(official, caption_max_ids=75, pad_to_square=True)
    assert (processor.caption_max_ids, processor.pad_to_square) == (75, True)
    assert AutoProcessor.from_pretrained(official).caption_max_ids is None  # off by default


def test_direct_load_with_a_missing_tensor_fails(official):
    tensors = load_file(official / "model.safetensors")
    del tensors["model.norm.weight"]
    save_file(tensors, official / "model.safetensors", metadata={"format": "pt"})
    for loader in MODEL_LOADERS:
        with pytest.raises(OfficialCheckpointError, match=r"model\.norm\.weight"):
            loader.from_pretrained(official)


def test_routing_leaves_native_checkpoints_alone(tmp_path, official):
    assert is_official_checkpoint(official) and not is_official_checkpoint(None)
    assert AutoConfig.from_pretrained(official).model_type == "llava_qwen"
    native = convert_official_checkpoint(official, tmp_path / "native")
    assert not is_official_checkpoint(native)
    assert not is_official_checkpoint(tmp_path / "does-not-exist")
    assert AutoConfig.from_pretrained(native).model_type == "unifilter"


def test_qwen3_official_checkpoint_loads_directly_with_a_vision_override(tmp_path):
    src = official_layout_checkpoint(tmp_path / "official", "qwen3", 1, "acme/siglip-tiny-98", seed=3)
    override = {"num_attention_heads": 2, "image_size": 98}
    with pytest.raises(OfficialCheckpointError, match="vision_config"):
        AutoModel.from_pretrained(src)
    native = convert_official_checkpoint(src, tmp_path / "native", vision_config=override)
    samples = _random_samples()
    expected = scores(UniFilterForQualityScoring.from_pretrained(native).eval(),
                      AutoProcessor.from_pretrained(native), samples)
    model = AutoModelForSequenceClassification.from_pretrained(src, vision_config=override).eval()
    processor = AutoProcessor.from_pretrained(src, vision_config=override)
    assert model.language_model.config.model_type == "qwen3"
    assert scores(model, processor, samples) == pytest.approx(expected, abs=1e-6)
