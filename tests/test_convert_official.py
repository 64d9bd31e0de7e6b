"""Official (LLaVA-layout) checkpoints -> native: fixture parity, an independent reference, safety checks.

`official_layout_checkpoint` builds random Qwen2 / Qwen3 checkpoints with the key names and config keys of
docs/official_checkpoints.md, and `reference_logits` is a from-scratch implementation of docs/model.md
(items 1-6) on the *official* tensors (plain torch and loops, nothing from unifilter_hf), so a wrong name
mapping, a lost config value or a wrong vision layer shows up as a score difference.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import AutoProcessor, AutoTokenizer
from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

from tests.kit import TASK, photo, run_cli, tiny_tokenizer
from unifilter_hf import Sample, UniFilterForQualityScoring, UniFilterProcessor
from unifilter_hf.cli import build_parser
from unifilter_hf.official import (
    OFFICIAL_CAPTION_MAX_IDS,
    OfficialCheckpointError,
    convert_official,
    convert_official_checkpoint,
)
from unifilter_hf.official.vision_tower import resolve_vision_config

# A checkpoint saved by the official code with the scores it computed (see its README.md).
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "official-tiny-qwen2"
HUB_ID = "weizhiwang/UniFilter-Qwen2.5-1.5B"


# -- shared helpers (also used by test_official_direct_load.py and test_official_pipeline.py) ------------------
def copy_tree(src: Path, dst: Path) -> Path:
    """Copy a folder and make the copy writable (the shared fixture is read-only)."""
    shutil.copytree(src, dst, copy_function=shutil.copyfile)
    for root, _, _ in os.walk(dst):
        os.chmod(root, 0o755)
    return dst


def fixture_cases() -> tuple[list[dict], list[float]]:
    """The fixture's six cases (image paths made absolute) and the official scores."""
    cases = json.loads((FIXTURE / "cases.json").read_text())
    for case in cases:
        if case["kind"] == "caption":
            case["image"] = str(FIXTURE / case["image"])
        else:
            case["images"] = [str(FIXTURE / p) if p else None for p in case["images"]]
    return cases, json.loads((FIXTURE / "official_scores.json").read_text())


def fixture_samples() -> list[Sample]:
    samples = []
    for case in fixture_cases()[0]:
        if case["kind"] == "caption":
            samples.append(Sample.caption(Image.open(case["image"]), case["text"]))
        else:
            samples.append(Sample.document(case["texts"], [Image.open(p) if p else None for p in case["images"]]))
    return samples


def fake_hub_cache(cache: Path, repo_id: str, folder: Path) -> Path:
    """Lay `folder` out as the cached snapshot of `repo_id` (what a previous download would leave)."""
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    copy_tree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return repo / "snapshots" / commit


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An offline Hub cache holding the fixture checkpoint as `HUB_ID` (HF_HUB_OFFLINE=1 in conftest)."""
    import huggingface_hub.constants

    cache = tmp_path / "hub-cache"
    fake_hub_cache(cache, HUB_ID, FIXTURE / "checkpoint")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


@torch.no_grad()
def scores(model, processor, samples: list[Sample], batch_size: int | None = None) -> list[float]:
    batch_size = batch_size or len(samples)
    out = []
    for i in range(0, len(samples), batch_size):
        out += model(**processor(samples[i : i + batch_size])).scores.tolist()
    return out


# -- fixture parity --------------------------------------------------------------------------------------------
def test_fixture_parity_through_the_converter(tmp_path):
    src = copy_tree(FIXTURE / "checkpoint", tmp_path / "official")
    dst = convert_official_checkpoint(src, tmp_path / "native")
    model = UniFilterForQualityScoring.from_pretrained(dst).eval()
    processor = AutoProcessor.from_pretrained(dst)
    assert type(processor) is UniFilterProcessor
    samples, (_, expected) = fixture_samples(), fixture_cases()
    for batch_size in (1, 6):
        assert scores(model, processor, samples, batch_size) == pytest.approx(expected, abs=1e-4)
    # Batches in another order (documents and captions mixed, different padding).
    order = [5, 0, 4, 1]
    got = scores(model, processor, [samples[i] for i in order])
    assert got == pytest.approx([expected[i] for i in order], abs=1e-4)


def test_converted_folder_contents_and_recorded_options(tmp_path):
    src = copy_tree(FIXTURE / "checkpoint", tmp_path / "official")
    dst = convert_official_checkpoint(src, tmp_path / "native", caption_max_ids=OFFICIAL_CAPTION_MAX_IDS)
    names = {p.name for p in dst.iterdir()}
    assert {"model.safetensors", "config.json", "processor_config.json", "tokenizer.json", "README.md"} <= names
    assert not any(n.endswith(".bin") for n in names)

    weights = load_file(dst / "model.safetensors")
    assert not any(k.startswith("vision_tower.head.") or "vision_model." in k for k in weights)
    assert weights["score.weight"].shape == (1, 64)
    official = load_file(FIXTURE / "checkpoint" / "model.safetensors")
    assert torch.equal(weights["projector.linear_2.bias"], official["model.mm_projector.mlp_projector.2.bias"])

    config = json.loads((dst / "config.json").read_text())
    assert config["model_type"] == "unifilter" and len(config["id2label"]) == 1
    assert config["vision_config"]["vision_use_head"] is False
    assert config["vision_config"]["image_size"] == 384 and config["num_image_tokens"] == 144
    proc_cfg = json.loads((dst / "processor_config.json").read_text())
    assert proc_cfg["caption_max_ids"] == OFFICIAL_CAPTION_MAX_IDS
    assert proc_cfg["pad_to_square"] is False and proc_cfg["add_bos_token"] and proc_cfg["add_eos_token"]

    processor = AutoProcessor.from_pretrained(dst)
    assert config["image_token_id"] == processor.image_token_id
    assert processor.tokenizer.bos_token == "<s>" and processor.caption_max_ids == OFFICIAL_CAPTION_MAX_IDS
    ids = processor([Sample.caption(photo("coffee", 64), "word " * 200)])["input_ids"][0]
    assert len(ids) == OFFICIAL_CAPTION_MAX_IDS - 1 + 144  # the official cut: 75 unspliced ids, EOS lost

    card = (dst / "README.md").read_text()
    assert "license: apache-2.0" in card and "assumed" in card
    assert "`official`" in card and "llava_qwen" in card
    assert not re.search(r"\d{4}-\d{2}-\d{2}", card)  # no date: conversions are byte-identical


def test_cli_conversion_is_deterministic(tmp_path):
    src = copy_tree(FIXTURE / "checkpoint", tmp_path / "official")
    (src / "README.md").write_text("---\nlicense: mit\n---\n# UniFilter\n")
    parser = build_parser()
    for run in ("a", "b"):
        args = parser.parse_args(["convert", str(src), str(tmp_path / run / "native"), "--source-id", HUB_ID])
        assert args.func(args) == 0
    first, second = tmp_path / "a" / "native", tmp_path / "b" / "native"
    files = sorted(p.name for p in first.iterdir())
    assert files == sorted(p.name for p in second.iterdir())
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    card = (first / "README.md").read_text()
    assert "license: mit" in card and HUB_ID in card and "assumed" not in card


def test_hub_id_source_reads_the_hub_cache(tmp_path, hub_cache):
    dst = convert_official_checkpoint(HUB_ID, tmp_path / "native")
    model = UniFilterForQualityScoring.from_pretrained(dst).eval()
    _, expected = fixture_cases()
    assert scores(model, AutoProcessor.from_pretrained(dst), fixture_samples()) == pytest.approx(expected, abs=1e-4)
    assert f"- {HUB_ID}" in (dst / "README.md").read_text()  # base_model names the source


# -- safety ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("drop", ["model.layers.1.mlp.up_proj.weight", "score.weight"])
def test_missing_tensor_is_an_error_naming_it(tmp_path, drop):
    src = copy_tree(FIXTURE / "checkpoint", tmp_path / "official")
    tensors = load_file(src / "model.safetensors")
    del tensors[drop]
    save_file(tensors, src / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(OfficialCheckpointError, match=re.escape(drop)):
        convert_official_checkpoint(src, tmp_path / "native")
    assert not (tmp_path / "native" / "model.safetensors").exists()


def test_unexpected_and_mismatched_tensors_are_errors(tmp_path):
    src = copy_tree(FIXTURE / "checkpoint", tmp_path / "official")
    tensors = load_file(src / "model.safetensors")
    tensors["model.layers.0.mlp.up_proj.weight"] = torch.zeros(3, 64)
    tensors["model.extra_adapter.weight"] = torch.zeros(2)
    save_file(tensors, src / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(OfficialCheckpointError) as err:
        convert_official(src)
    assert "model.layers.0.mlp.up_proj.weight" in str(err.value) and "model.extra_adapter.weight" in str(err.value)


def test_pickle_weights_need_explicit_consent(tmp_path):
    src = copy_tree(FIXTURE / "checkpoint", tmp_path / "official")
    torch.save(load_file(src / "model.safetensors"), src / "pytorch_model.bin")
    (src / "model.safetensors").unlink()
    with pytest.raises(OfficialCheckpointError, match="allow_pickle"):
        convert_official(src)
    converted = convert_official(src, allow_pickle=True)
    _, expected = fixture_cases()
    got = scores(converted.to_model(), converted.processor, fixture_samples())
    assert got == pytest.approx(expected, abs=1e-4)


# -- SigLIP config resolution ----------------------------------------------------------------------------------
def test_known_towers_and_shape_checks():
    official = {"mm_vision_tower": "google/siglip2-so400m-patch14-384"}
    cfg = resolve_vision_config(official, Path("."), shapes=None)
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == (1152, 27, 16)
    assert (cfg.intermediate_size, cfg.patch_size, cfg.image_size, cfg.vision_use_head) == (4304, 14, 384, False)
    # An absolute path from the training machine, which does not exist here, matches by folder name.
    moved = resolve_vision_config({"mm_vision_tower": "/gone/siglip-so400m-patch14-384"}, Path("."), None)
    assert moved.num_attention_heads == 16
    # The table must agree with the weights.
    p = "model.vision_tower.vision_tower.vision_model."
    shapes = {p + "embeddings.patch_embedding.weight": (64, 3, 14, 14),
              p + "embeddings.position_embedding.weight": (729,),
              p + "encoder.layers.0.mlp.fc1.weight": (128, 64)}
    with pytest.raises(OfficialCheckpointError, match="hidden_size: 1152 declared, 64 in the weights"):
        resolve_vision_config(official, Path("."), shapes)
    # Override: heads and image size given, the rest read off the weights.
    cfg = resolve_vision_config({"mm_vision_tower": "x/y"}, Path("."), shapes, '{"num_attention_heads": 4, '
                                '"image_size": 384}')
    assert (cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, cfg.image_size) == (64, 128, 1, 384)
    with pytest.raises(OfficialCheckpointError, match="gives 676 patches"):
        resolve_vision_config({"mm_vision_tower": "x/y"}, Path("."), shapes, {"num_attention_heads": 4,
                                                                              "image_size": 370})


# -- random official-layout checkpoints vs an independent reference -------------------------------------------
VISION = {"hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 2,
          "patch_size": 14, "image_size": 98}  # 7 x 7 patches, pooled to 3 x 3 with overlapping windows
NUM_IMAGE_TOKENS = 9


def official_layout_checkpoint(folder: Path, text: str, num_labels: int, tower: str | None, seed: int) -> Path:
    """A random checkpoint with the official names and config keys; SigLIP tower local unless `tower`."""
    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=0.15):
        return torch.randn(*shape, generator=gen) * scale

    def norm(n):
        return 1 + rnd(n, scale=0.1)

    tokenizer = tiny_tokenizer(with_bos=False)  # like Qwen: no BOS of its own, `<s>` among the added tokens
    vocab, hidden, heads, kv, inter = len(tokenizer), 32, 4, 2, 64
    head_dim = 16 if text == "qwen3" else hidden // heads
    w, v_mlp, patch = VISION["hidden_size"], VISION["intermediate_size"], VISION["patch_size"]
    sd = {}
    p = "model.vision_tower.vision_tower.vision_model."
    sd[p + "embeddings.patch_embedding.weight"] = rnd(w, 3, patch, patch, scale=0.05)
    sd[p + "embeddings.patch_embedding.bias"] = rnd(w)
    sd[p + "embeddings.position_embedding.weight"] = rnd((VISION["image_size"] // patch) ** 2, w)
    for i in range(VISION["num_hidden_layers"]):
        lp = f"{p}encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            sd[lp + f"self_attn.{proj}.weight"], sd[lp + f"self_attn.{proj}.bias"] = rnd(w, w), rnd(w)
        for ln in ("layer_norm1", "layer_norm2"):
            sd[lp + f"{ln}.weight"], sd[lp + f"{ln}.bias"] = norm(w), rnd(w)
        sd[lp + "mlp.fc1.weight"], sd[lp + "mlp.fc1.bias"] = rnd(v_mlp, w), rnd(v_mlp)
        sd[lp + "mlp.fc2.weight"], sd[lp + "mlp.fc2.bias"] = rnd(w, v_mlp), rnd(w)
    sd[p + "post_layernorm.weight"], sd[p + "post_layernorm.bias"] = norm(w), rnd(w)
    # The attention-pool head: saved by the official code, never used.
    sd[p + "head.probe"] = rnd(1, 1, w)
    sd[p + "head.attention.in_proj_weight"], sd[p + "head.attention.in_proj_bias"] = rnd(3 * w, w), rnd(3 * w)
    sd[p + "head.attention.out_proj.weight"], sd[p + "head.attention.out_proj.bias"] = rnd(w, w), rnd(w)
    sd[p + "head.layernorm.weight"], sd[p + "head.layernorm.bias"] = norm(w), rnd(w)
    sd[p + "head.mlp.fc1.weight"], sd[p + "head.mlp.fc1.bias"] = rnd(v_mlp, w), rnd(v_mlp)
    sd[p + "head.mlp.fc2.weight"], sd[p + "head.mlp.fc2.bias"] = rnd(w, v_mlp), rnd(w)

    sd["model.mm_projector.mlp_projector.0.weight"] = rnd(hidden, w)
    sd["model.mm_projector.mlp_projector.0.bias"] = rnd(hidden)
    sd["model.mm_projector.mlp_projector.2.weight"] = rnd(hidden, hidden)
    sd["model.mm_projector.mlp_projector.2.bias"] = rnd(hidden)

    sd["model.embed_tokens.weight"] = rnd(vocab, hidden, scale=0.5)
    for i in range(2):
        lp = f"model.layers.{i}."
        sd[lp + "self_attn.q_proj.weight"] = rnd(heads * head_dim, hidden)
        sd[lp + "self_attn.k_proj.weight"] = rnd(kv * head_dim, hidden)
        sd[lp + "self_attn.v_proj.weight"] = rnd(kv * head_dim, hidden)
        sd[lp + "self_attn.o_proj.weight"] = rnd(hidden, heads * head_dim)
        if text == "qwen2":  # Qwen2 has q/k/v biases; Qwen3 has per-head q/k RMSNorms instead
            for proj, n in (("q_proj", heads), ("k_proj", kv), ("v_proj", kv)):
                sd[lp + f"self_attn.{proj}.bias"] = rnd(n * head_dim)
        else:
            sd[lp + "self_attn.q_norm.weight"], sd[lp + "self_attn.k_norm.weight"] = norm(head_dim), norm(head_dim)
        sd[lp + "mlp.gate_proj.weight"], sd[lp + "mlp.up_proj.weight"] = rnd(inter, hidden), rnd(inter, hidden)
        sd[lp + "mlp.down_proj.weight"] = rnd(hidden, inter)
        sd[lp + "input_layernorm.weight"], sd[lp + "post_attention_layernorm.weight"] = norm(hidden), norm(hidden)
    sd["model.norm.weight"] = norm(hidden)
    sd["score.weight"] = rnd(num_labels, hidden, scale=0.5)

    folder.mkdir(parents=True)
    save_file(sd, folder / "model.safetensors", metadata={"format": "pt"})
    tokenizer.save_pretrained(folder)
    if tower is None:
        tower = "siglip-tower"
        (folder / tower).mkdir()
        (folder / tower / "config.json").write_text(json.dumps({"model_type": "siglip_vision_model", **VISION}))
    llm = {"hidden_size": hidden, "intermediate_size": inter, "num_hidden_layers": 2, "num_attention_heads": heads,
           "num_key_value_heads": kv, "hidden_act": "silu", "max_position_embeddings": 8192, "rms_norm_eps": 1e-5,
           "rope_theta": 5000.0, "rope_scaling": None, "vocab_size": vocab, "tie_word_embeddings": False,
           "use_sliding_window": False, "sliding_window": 4096, "max_window_layers": 21, "use_cache": True,
           "attention_dropout": 0.0, "initializer_range": 0.02, "bos_token_id": 0, "eos_token_id": 1,  # never read
           "torch_dtype": "float32", "transformers_version": "4.52.4"}
    if text == "qwen3":
        llm.update(head_dim=head_dim, attention_bias=False)
    labels = {str(i): f"LABEL_{i}" for i in range(num_labels)}
    config = {
        "architectures": ["LlavaQwenClassifier" if text == "qwen2" else "LlavaQwen3Classifier"],
        "model_type": "llava_qwen" if text == "qwen2" else "llava_qwen3",
        **llm,
        "id2label": labels, "label2id": {v: int(k) for k, v in labels.items()},
        "mm_vision_tower": tower, "mm_projector_type": "aapool_mlp", "mm_hidden_size": w,
        "mm_num_image_tokens": NUM_IMAGE_TOKENS, "mm_vision_select_layer": -1, "mm_vision_select_feature": "patch",
        "mm_patch_merge_type": "flat", "image_aspect_ratio": "pad", "tokenizer_padding_side": "right",
        "tokenizer_model_max_length": 8192, "use_mm_proj": True,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


def _rms(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def _layer_norm(x, weight, bias, eps):
    mean = x.mean(-1, keepdim=True)
    var = (x - mean).pow(2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def _reference_vision(sd, pixels, heads, eps=1e-6):
    """SigLIP on one image: the last encoder layer's output, *before* post_layernorm (docs/model.md item 1)."""
    p = "model.vision_tower.vision_tower.vision_model."
    weight = sd[p + "embeddings.patch_embedding.weight"]
    size = weight.shape[-1]
    grid = pixels.shape[-1] // size
    rows = []
    for r in range(grid):  # patches in row-major order, each a dot product with the conv kernels
        for c in range(grid):
            block = pixels[:, r * size : (r + 1) * size, c * size : (c + 1) * size]
            rows.append(weight.flatten(1) @ block.flatten() + sd[p + "embeddings.patch_embedding.bias"])
    x = torch.stack(rows) + sd[p + "embeddings.position_embedding.weight"]
    n_layers = 1 + max(int(k.split(".")[6]) for k in sd if k.startswith(p + "encoder.layers."))
    for i in range(n_layers):
        lp = f"{p}encoder.layers.{i}."

        def lin(name, t, lp=lp):
            return t @ sd[lp + name + ".weight"].T + sd[lp + name + ".bias"]

        h = _layer_norm(x, sd[lp + "layer_norm1.weight"], sd[lp + "layer_norm1.bias"], eps)
        q, k, v = lin("self_attn.q_proj", h), lin("self_attn.k_proj", h), lin("self_attn.v_proj", h)
        d = q.shape[-1] // heads
        out = []
        for head in range(heads):
            s = slice(head * d, (head + 1) * d)
            out.append(torch.softmax(q[:, s] @ k[:, s].T / math.sqrt(d), -1) @ v[:, s])
        x = x + lin("self_attn.out_proj", torch.cat(out, -1))
        h = lin("mlp.fc1", _layer_norm(x, sd[lp + "layer_norm2.weight"], sd[lp + "layer_norm2.bias"], eps))
        h = 0.5 * h * (1 + torch.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h**3)))
        x = x + lin("mlp.fc2", h)
    return x


def _reference_projector(sd, feats, out_side):
    """27x27-style grid -> adaptive average pool (overlapping windows) -> Linear, exact GELU, Linear."""
    n = math.isqrt(feats.shape[0])
    grid = feats.reshape(n, n, -1)
    tokens = []
    for i in range(out_side):
        r0, r1 = (i * n) // out_side, -((-(i + 1) * n) // out_side)
        for j in range(out_side):
            c0, c1 = (j * n) // out_side, -((-(j + 1) * n) // out_side)
            tokens.append(grid[r0:r1, c0:c1].reshape(-1, grid.shape[-1]).mean(0))
    x = torch.stack(tokens) @ sd["model.mm_projector.mlp_projector.0.weight"].T
    x = x + sd["model.mm_projector.mlp_projector.0.bias"]
    x = 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))
    return x @ sd["model.mm_projector.mlp_projector.2.weight"].T + sd["model.mm_projector.mlp_projector.2.bias"]


def _rope(x, theta):
    """Rotary embedding, rotate-half convention, positions 0..L-1; x is (L, head_dim)."""
    d = x.shape[-1]
    inv = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float32) / d))
    angles = torch.arange(x.shape[0], dtype=torch.float32)[:, None] * inv[None]
    cos, sin = torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin()
    rotated = torch.cat([-x[:, d // 2 :], x[:, : d // 2]], -1)
    return x * cos + rotated * sin


def _reference_decoder(sd, cfg, embeds):
    """The Qwen2 / Qwen3 decoder on one unpadded sequence; returns the final-norm hidden states."""
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    eps, theta = cfg["rms_norm_eps"], cfg["rope_theta"]
    x, length = embeds, embeds.shape[0]
    causal = torch.full((length, length), float("-inf")).triu(1)
    for i in range(cfg["num_hidden_layers"]):
        lp = f"model.layers.{i}."

        def proj(name, t, lp=lp):
            out = t @ sd[lp + name + ".weight"].T
            return out + sd[lp + name + ".bias"] if lp + name + ".bias" in sd else out

        h = _rms(x, sd[lp + "input_layernorm.weight"], eps)
        q = proj("self_attn.q_proj", h).reshape(length, heads, head_dim)
        k = proj("self_attn.k_proj", h).reshape(length, kv, head_dim)
        v = proj("self_attn.v_proj", h).reshape(length, kv, head_dim)
        if lp + "self_attn.q_norm.weight" in sd:  # Qwen3: RMSNorm per head before RoPE
            q, k = _rms(q, sd[lp + "self_attn.q_norm.weight"], eps), _rms(k, sd[lp + "self_attn.k_norm.weight"], eps)
        out = []
        for head in range(heads):
            g = head // (heads // kv)  # grouped-query attention
            qh, kh = _rope(q[:, head], theta), _rope(k[:, g], theta)
            out.append(torch.softmax(qh @ kh.T / math.sqrt(head_dim) + causal, -1) @ v[:, g])
        x = x + proj("self_attn.o_proj", torch.cat(out, -1))
        h = _rms(x, sd[lp + "post_attention_layernorm.weight"], eps)
        gate = proj("mlp.gate_proj", h)
        x = x + proj("mlp.down_proj", gate * torch.sigmoid(gate) * proj("mlp.up_proj", h))
    return _rms(x, sd["model.norm.weight"], eps)


def _reference_prompt(sample: Sample) -> tuple[str, list[Image.Image]]:
    """docs/model.md item 5: the caption prompt, or document slots joined with blank lines."""
    if sample.kind == "caption":
        return "<image>\n" + sample.texts[0].replace("<image>", "image"), [sample.images[0]]
    parts, images = [], []
    for text, image in zip(sample.texts, sample.images):
        if image is not None:
            parts.append("<image>")
            images.append(image)
        else:
            parts.append(text.replace("<image>", "<image-placeholder>"))
    return "\n\n".join(parts), images


@torch.no_grad()
def reference_logits(folder: Path, sample: Sample, vision_heads: int, image_size: int) -> torch.Tensor:
    """The official model's logits for one sample, computed from the official files only."""
    sd = load_file(folder / "model.safetensors")
    cfg = json.loads((folder / "config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(folder)
    bos, eos = tokenizer.convert_tokens_to_ids("<s>"), tokenizer.eos_token_id
    prompt, images = _reference_prompt(sample)
    ids: list[int | None] = []  # None marks an image
    for i, chunk in enumerate(prompt.split("<image>")):
        if i:
            ids.append(None)
        ids += tokenizer(chunk, add_special_tokens=False)["input_ids"]
    ids = ([bos] if ids[:1] != [bos] else []) + ids + ([eos] if ids[-1:] != [eos] else [])
    pixel_proc = SiglipImageProcessorPil(size={"height": image_size, "width": image_size})
    side = math.isqrt(cfg["mm_num_image_tokens"])
    rows, image_iter = [], iter(images)
    for token in ids:
        if token is None:
            pixels = pixel_proc(images=[next(image_iter).convert("RGB")], return_tensors="pt")["pixel_values"][0]
            rows.extend(_reference_projector(sd, _reference_vision(sd, pixels, vision_heads), side))
        else:
            rows.append(sd["model.embed_tokens.weight"][token])
    hidden = _reference_decoder(sd, cfg, torch.stack(rows))
    return sd["score.weight"] @ hidden[-1]


def _random_samples() -> list[Sample]:
    return [
        Sample.caption(photo("chelsea", 120), "An orange tabby cat looks at the camera."),
        Sample.caption(photo("camera", 90), "A man with a <image> camera."),  # grayscale; literal <image>
        Sample.document(["A short trip report.", None, "We stopped for coffee.", None, "Then a launch.", None],
                        [None, photo("china", 100), None, photo("coffee", 100), None, photo("rocket", 100)]),
        Sample.document([None, "Flowers and a cat, <image> described at some length.", None],
                        [photo("flower", 100), None, photo("astronaut", 100)]),
    ]


@pytest.mark.parametrize("text,num_labels", [("qwen2", 1), ("qwen3", 4)])
def test_random_official_checkpoints_match_an_independent_reference(tmp_path, text, num_labels):
    tower = None if text == "qwen2" else "acme/siglip-tiny-98"  # local tower folder / unknown Hub tower
    src = official_layout_checkpoint(tmp_path / "official", text, num_labels, tower, seed=11)
    override = None if tower is None else {"num_attention_heads": 2, "image_size": 98}
    if override is not None:
        with pytest.raises(OfficialCheckpointError, match="--vision-config"):
            convert_official(src)
    dst = convert_official_checkpoint(src, tmp_path / "native", vision_config=override)
    model = UniFilterForQualityScoring.from_pretrained(dst).eval()
    processor = AutoProcessor.from_pretrained(dst)
    assert model.language_model.config.model_type == text and model.config.num_labels == num_labels
    bos_id = processor.tokenizer.convert_tokens_to_ids("<s>")
    assert processor.tokenizer.bos_token_id == bos_id  # registered from the vocab, not assumed

    samples = _random_samples()
    expected = torch.stack([reference_logits(src, s, vision_heads=2, image_size=98) for s in samples])
    with torch.no_grad():
        batch = processor(samples)
        assert (batch["input_ids"][:, 0] == bos_id).all()
        batched = model(**batch).logits
        alone = torch.cat([model(**processor([s])).logits for s in samples])
    assert batched.shape == (len(samples), num_labels)
    torch.testing.assert_close(batched, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(alone, expected, atol=1e-5, rtol=0)
    assert expected.std(0).min() > 1e-3  # the samples really differ


def test_convert_refuses_a_non_empty_destination_and_saves_a_runnable_pipeline(tmp_path):
    src = copy_tree(FIXTURE / "checkpoint", tmp_path / "official")
    dst = tmp_path / "native"
    dst.mkdir()
    (dst / "notes.txt").write_text("mine")
    run = run_cli("convert", str(src), str(dst))
    assert run.returncode == 2 and "--overwrite" in run.stderr and (dst / "notes.txt").read_text() == "mine"
    assert run_cli("convert", str(src), str(dst), "--overwrite").returncode == 0
    card = (dst / "README.md").read_text()
    assert "image-text-to-text" not in card and "multimodal-quality-scoring" in card
    assert json.loads((dst / "config.json").read_text())["custom_pipelines"][TASK]
    photo("coffee").save(tmp_path / "coffee.png")
    script = textwrap.dedent(f"""
        import json, sys
        sys.modules["unifilter_hf"] = None  # as if not installed
        from transformers import pipeline
        pipe = pipeline({TASK!r}, model={str(dst)!r}, trust_remote_code=True, device="cpu")
        print(json.dumps(pipe({{"image": {str(tmp_path / "coffee.png")!r}, "text": "A cup."}})))
    """)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "home"))
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert math.isfinite(json.loads(run.stdout.strip().splitlines()[-1])["score"])
