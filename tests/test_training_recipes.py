"""Recipes as data: both parse; the 1.5B recipe builds with the real sizes on the meta device (no training)."""

from pathlib import Path

import pytest

from unifilter_hf.training import parse_train_args
from unifilter_hf.training.dry_run import dry_run

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
QUICKSTART = str(RECIPES / "quickstart" / "train.yaml")
FULL = str(RECIPES / "unifilter-qwen2.5-1.5b" / "stage2.yaml")
STAGE1 = str(RECIPES / "unifilter-qwen2.5-1.5b" / "stage1.yaml")


def test_quickstart_recipe_parses_with_overrides(tmp_path):
    data, model, train = parse_train_args(["--config", QUICKSTART, "--output_dir", str(tmp_path), "--seed", "7"])
    assert data.dataset == "shapes_world" and train.seed == 7 and train.use_cpu and not train.bf16
    assert model.num_labels == 1 and train.loss == "mse" and train.pairwise_weight > 0 and train.group_batches
    assert train.per_device_train_batch_size % 4 == 0  # whole groups of four versions per batch


def _siglip_params(h, mlp, layers, patch, image):
    layer = 2 * h + 4 * (h * h + h) + 2 * h + (h * mlp + mlp) + (mlp * h + h)
    return 3 * patch * patch * h + h + (image // patch) ** 2 * h + layers * layer + 2 * h


def _qwen2_params(h, mlp, layers, heads, kv, vocab):
    head_dim = h // heads
    attn = (h * h + h) + 2 * (h * kv * head_dim + kv * head_dim) + h * h
    return vocab * h + layers * (attn + 3 * h * mlp + 2 * h) + h


def test_full_recipe_has_the_official_hyperparameters(tmp_path):
    info = dry_run(["--config", FULL, "--output_dir", str(tmp_path)])
    train, model = info["train_args"], info["model_args"]
    assert train.learning_rate == 2e-5 and str(train.lr_scheduler_type.value) == "cosine"
    assert train.warmup_steps == 0.03 and train.num_train_epochs == 10
    assert train.per_device_train_batch_size * train.gradient_accumulation_steps * 8 == 512  # on 8 GPUs
    assert train.gradient_accumulation_steps == 2 and train.global_batch_size == 512  # official split
    assert train.bf16 and train.activation_checkpointing and train.loss == "mse" and model.num_labels == 1
    assert train.tf32 and train.seed == 42 and train.stage == 2
    assert model.text_weights == model.tokenizer_name_or_path == "Qwen/Qwen2.5-1.5B-Instruct"
    assert model.official_bos and model.pad_to_square and model.projector_weights
    assert info["data"].dataset_layout == "official" and hasattr(info["data"], "validation_file")
    assert model.max_length == 4096 and model.freeze_vision and model.num_image_tokens == 144
    assert train.load_best_model_at_end and train.metric_for_best_model == "accuracy" and train.greater_is_better
    assert train.eval_strategy.value == "epoch" == train.save_strategy.value


def test_full_recipe_builds_with_real_sizes_on_meta(tmp_path, capsys):
    info = dry_run(["--config", FULL, "--output_dir", str(tmp_path)])
    model, counts = info["model"], info["parameters"]
    v, t = model.config.vision_config, model.config.text_config
    assert (v.hidden_size, v.num_hidden_layers, v.num_attention_heads, v.intermediate_size, v.patch_size,
            v.image_size) == (1152, 27, 16, 4304, 14, 384)
    assert (t.hidden_size, t.num_hidden_layers, t.num_attention_heads, t.num_key_value_heads,
            t.intermediate_size, t.vocab_size) == (1536, 28, 12, 2, 8960, 151936)
    assert next(model.parameters()).device.type == "meta"
    vision = _siglip_params(1152, 4304, 27, 14, 384)
    llm = _qwen2_params(1536, 8960, 28, 12, 2, 151936)
    projector = 1152 * 1536 + 1536 + 1536 * 1536 + 1536
    assert llm == 1_543_714_304  # Qwen2.5-1.5B as published (tied embeddings, no LM head)
    assert counts["parts"] == {"vision_tower": vision, "projector": projector, "language_model": llm, "score": 1536}
    assert counts["total"] == vision + projector + llm + 1536
    assert counts["trainable"] == projector + llm + 1536  # vision frozen, LLM fully trained (official)
    assert f"{counts['total']:,} total" in capsys.readouterr().out


def test_full_recipe_with_lora_trains_only_adapters_projector_and_head(tmp_path):
    info = dry_run(["--config", FULL, "--output_dir", str(tmp_path), "--use_peft", "true", "--lora_r", "16"])
    model = info["model"]
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert not [n for n in trainable if "vision_tower" in n]
    r, h, kv, mlp, layers = 16, 1536, 256, 8960, 28
    lora = layers * r * ((h + h) * 2 + (h + kv) * 2 + (h + mlp) * 3)  # q,o; k,v; gate,up,down
    projector = 1152 * 1536 + 1536 + 1536 * 1536 + 1536
    assert info["parameters"]["trainable"] == lora + projector + 1536


def test_dry_run_of_the_recipe_folder_prints_each_stage_and_the_global_batch(tmp_path, capsys):
    info = dry_run(["--config", str(Path(FULL).parent), "--output_dir", str(tmp_path)])
    stage1, stage2 = info["stages"]
    assert stage1["train_args"].stage == 1 and stage2["train_args"].stage == 2
    assert stage1["train_args"].learning_rate == 1e-3 and stage1["train_args"].num_train_epochs == 1
    assert stage1["parameters"]["trainable"] == stage1["parameters"]["parts"]["projector"]  # projector only
    assert stage1["settings"]["text_weights"] == stage2["settings"]["text_weights"]
    out = capsys.readouterr().out
    assert "stage1.yaml: stage 1" in out and "stage2.yaml: stage 2" in out
    assert out.count("global_batch: 512 = 8 processes x 32 rows x 2 accumulation steps") == 2
    assert "tf32: True" in out and "seed: 42" in out


def test_a_launch_that_breaks_the_global_batch_is_refused(tmp_path):
    from unifilter_hf.training.run import check_global_batch

    _, _, train = parse_train_args(["--config", QUICKSTART, "--output_dir", str(tmp_path),
                                    "--global_batch_size", "512"])
    with pytest.raises(ValueError, match="global batch is 512"):
        check_global_batch(train)


@pytest.mark.parametrize("recipe", [QUICKSTART, FULL, STAGE1])
def test_recipes_cite_docs_not_shared(recipe):
    text = Path(recipe).read_text()
    assert "../shared" not in text and "SPEC.md" not in text
