"""LoRA on the LLM only (never SigLIP), projector and head fully trained, merge to a plain checkpoint."""

import pytest
import torch

from unifilter_hf import UniFilterForQualityScoring
from unifilter_hf.training import UniFilterModelConfig
from unifilter_hf.training.model_setup import apply_lora, lora_target_regex


def _lora_model(seed=0):
    from tests.kit import tiny_model_and_processor

    model, processor = tiny_model_and_processor(seed=seed)
    model.vision_tower.requires_grad_(False)
    return apply_lora(model, UniFilterModelConfig(use_peft=True, lora_r=4, lora_alpha=8)), processor


def test_lora_targets_only_the_language_model():
    peft_model, _ = _lora_model()
    lora_modules = [n for n, m in peft_model.named_modules() if hasattr(m, "lora_A")]
    assert lora_modules, "no LoRA layer was created"
    assert not [n for n in lora_modules if "vision_tower" in n]
    assert all(".language_model." in n for n in lora_modules)
    # every LLM projection is adapted: 7 per decoder layer
    layers = peft_model.base_model.model.config.text_config.num_hidden_layers
    assert len(lora_modules) == 7 * layers


def test_projector_and_head_train_fully_vision_frozen():
    peft_model, _ = _lora_model()
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert any("projector" in n and "modules_to_save" in n for n in trainable)
    assert any(n.endswith("score.modules_to_save.default.weight") for n in trainable)
    assert not [n for n in trainable if "vision_tower" in n]
    llm_trainable = [n for n in trainable if "language_model" in n]
    assert llm_trainable and all("lora_" in n for n in llm_trainable)


def test_merge_and_unload_reloads_with_the_peft_scores(tmp_path):
    from tests.kit import photo
    from unifilter_hf import Sample

    peft_model, processor = _lora_model(seed=5)
    torch.manual_seed(0)
    with torch.no_grad():  # stand-in for training: non-zero LoRA B and changed saved modules
        for param in peft_model.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.2)
    peft_model.eval()
    batch = processor([Sample.caption(photo("coffee", 64), "A cup of coffee."),
                       Sample.caption(photo("rocket", 64), "A rocket on a pad.")])
    batch.pop("num_images", None)
    with torch.no_grad():
        before = peft_model(**batch).scores
    merged = peft_model.merge_and_unload()
    assert type(merged) is UniFilterForQualityScoring
    assert not [n for n, _ in merged.named_modules() if "lora" in n]
    merged.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    reloaded = UniFilterForQualityScoring.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        after = reloaded(**batch).scores
    assert not torch.allclose(before, torch.zeros_like(before))
    torch.testing.assert_close(after, before, atol=1e-5, rtol=0)


def test_full_finetuning_returns_the_model_itself():
    from tests.kit import tiny_model_and_processor

    model, _ = tiny_model_and_processor()
    assert apply_lora(model, UniFilterModelConfig(use_peft=False)) is model


@pytest.mark.parametrize("name", ["language_model.layers.0.self_attn.q_proj", "language_model.layers.1.mlp.down_proj"])
def test_regex_matches_llm_projections(name):
    import re

    assert re.fullmatch(lora_target_regex(["q_proj", "down_proj"]), name)
    assert not re.fullmatch(lora_target_regex(["q_proj", "down_proj"]), "vision_tower.vision_model.encoder."
                            "layers.0.self_attn.q_proj")
