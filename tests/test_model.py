"""The native model against a hand-written reference of docs/model.md, plus invariances and training."""

import math

import pytest
import torch

from tests.kit import photo, tiny_config, tiny_model_and_processor
from unifilter_hf import Sample, UniFilterForQualityScoring


def _samples():
    return [
        Sample.caption(photo("chelsea"), "An orange tabby cat looks at the camera."),
        Sample.caption(photo("coffee"), "Coffee."),
        Sample.document(
            ["A short trip report.", None, "We stopped for coffee.", None, "Then a launch.", None],
            [None, photo("china"), None, photo("coffee"), None, photo("rocket")],
        ),
        Sample.document([None, "Flowers and a cat, described at some length for a longer row."],
                        [photo("flower"), None]),
    ]


def _adaptive_pool_loops(grid: torch.Tensor, out: int) -> torch.Tensor:
    """(n, n, d) -> (out*out, d): mean over window [floor(i*n/out), ceil((i+1)*n/out)) per axis."""
    n = grid.shape[0]
    tokens = []
    for i in range(out):
        r0, r1 = math.floor(i * n / out), math.ceil((i + 1) * n / out)
        for j in range(out):
            c0, c1 = math.floor(j * n / out), math.ceil((j + 1) * n / out)
            cells = [grid[r, c] for r in range(r0, r1) for c in range(c0, c1)]
            tokens.append(torch.stack(cells).mean(0))
    return torch.stack(tokens)


@torch.no_grad()
def reference_score(model, processor, sample) -> float:
    """docs/model.md items 1-4 with plain loops, one sample, no padding."""
    cfg = model.config
    batch = processor([sample])
    ids = batch["input_ids"][0].tolist()
    pixel_values = batch.get("pixel_values")
    out_side = math.isqrt(cfg.num_image_tokens)
    image_embeds = []
    for k in range(0 if pixel_values is None else pixel_values.shape[0]):
        hs = model.vision_tower(pixel_values=pixel_values[k : k + 1], output_hidden_states=True).hidden_states
        feats = hs[-1][0]  # last encoder layer, before post_layernorm
        n = math.isqrt(feats.shape[0])
        grid = feats.reshape(n, n, -1)  # row-major patches
        pooled = _adaptive_pool_loops(grid, out_side)
        p = model.projector
        h = pooled @ p.linear_1.weight.T + p.linear_1.bias
        h = 0.5 * h * (1 + torch.erf(h / math.sqrt(2)))  # exact GELU
        image_embeds.append(h @ p.linear_2.weight.T + p.linear_2.bias)
    table = model.language_model.get_input_embeddings().weight
    rows, pos, img = [], 0, 0
    while pos < len(ids):
        if ids[pos] == cfg.image_token_id:
            rows.extend(image_embeds[img])
            img, pos = img + 1, pos + cfg.num_image_tokens
        else:
            rows.append(table[ids[pos]])
            pos += 1
    assert img == len(image_embeds)
    embeds = torch.stack(rows)[None]
    hidden = model.language_model(inputs_embeds=embeds).last_hidden_state[0, -1]
    return float(hidden @ model.score.weight[0])


def test_matches_hand_written_reference(tiny):
    model, proc = tiny
    for sample in _samples():
        got = model(**proc([sample])).scores.item()
        assert got == pytest.approx(reference_score(model, proc, sample), abs=1e-5)


def test_vision_features_are_taken_before_post_layernorm(tiny):
    model, proc = tiny
    px = proc([_samples()[0]])["pixel_values"]
    with torch.no_grad():
        out = model.vision_tower(pixel_values=px, output_hidden_states=True)
        feats = model.get_image_features(px)
        expected = model.projector(out.hidden_states[-1])
    assert torch.allclose(feats, expected)
    assert not torch.allclose(out.hidden_states[-1], out.last_hidden_state, atol=1e-3)


@pytest.mark.parametrize("num_labels", [1, 4])
def test_batch_invariance(num_labels):
    model, proc = tiny_model_and_processor("qwen2", num_labels=num_labels, seed=3)
    samples = _samples()
    with torch.no_grad():
        batched = model(**proc(samples)).scores
        alone = torch.cat([model(**proc([s])).scores for s in samples])
        reordered = model(**proc(samples[::-1])).scores.flip(0)
    assert batched.shape == (4,)
    assert torch.allclose(batched, alone, atol=1e-5)
    assert torch.allclose(reordered, alone, atol=1e-5)
    assert len(set(alone.round(decimals=5).tolist())) == 4  # rows really differ


def test_left_padding_gives_the_same_scores(tiny):
    model, proc = tiny
    batch = proc(_samples())
    ids, mask = batch["input_ids"], batch["attention_mask"]
    lengths = mask.sum(-1)
    left_ids, left_mask = torch.full_like(ids, 0), torch.zeros_like(mask)
    for r, n in enumerate(lengths.tolist()):
        left_ids[r, -n:], left_mask[r, -n:] = ids[r, :n], 1
    with torch.no_grad():
        right = model(**batch).scores
        left = model(input_ids=left_ids, attention_mask=left_mask, pixel_values=batch["pixel_values"]).scores
    assert torch.allclose(right, left, atol=1e-5)


def test_right_padded_batches_reach_the_decoder_without_a_padding_mask(tiny):
    """No mask and strictly counting positions: transformers then builds no seq x seq mask (a repeated
    position would read as packed sequences and bring a full mask back); left padding keeps its mask."""
    model, proc = tiny
    batch = proc(_samples())
    seen = []
    hook = model.language_model.register_forward_pre_hook(lambda mod, args, kw: seen.append(kw), with_kwargs=True)
    try:
        with torch.no_grad():
            model(**batch)
            model(input_ids=batch["input_ids"].flip(-1), attention_mask=batch["attention_mask"].flip(-1),
                  pixel_values=batch["pixel_values"])
    finally:
        hook.remove()
    right, left = seen
    assert right["attention_mask"] is None
    assert (right["position_ids"] == torch.arange(batch["input_ids"].shape[1])).all()
    assert left["attention_mask"] is not None


def test_image_token_id_may_lie_past_the_embedding_matrix(tiny):
    model, proc = tiny
    assert model.config.image_token_id >= model.get_input_embeddings().num_embeddings
    assert torch.isfinite(model(**proc(_samples())).scores).all()


def test_image_count_mismatch_is_a_clear_error(tiny):
    model, proc = tiny
    batch = proc(_samples()[:1])
    with pytest.raises(ValueError, match="image-token positions"):
        model(input_ids=batch["input_ids"], pixel_values=torch.cat([batch["pixel_values"]] * 2))
    with pytest.raises(ValueError, match="no pixel_values"):
        model(input_ids=batch["input_ids"])


def test_text_only_document_needs_no_pixels(tiny):
    model, proc = tiny
    batch = proc([Sample.document(["Only text here.", "And more."], [None, None])])
    assert "pixel_values" not in batch
    assert torch.isfinite(model(**batch).scores).all()


def test_sdpa_and_eager_agree():
    model, proc = tiny_model_and_processor()
    batch = proc(_samples())
    with torch.no_grad():
        sdpa = model(**batch).scores
        model.set_attn_implementation("eager")
        eager = model(**batch).scores
    assert model.config.text_config._attn_implementation == "eager"
    assert torch.allclose(sdpa, eager, atol=1e-5)


@pytest.mark.parametrize("backbone", ["qwen2", "qwen3", "llama"])
def test_backbones_forward_and_backward(backbone):
    model, proc = tiny_model_and_processor(backbone, num_labels=4)
    assert type(model.language_model).__name__.lower().startswith(backbone)
    model.train()
    batch = proc(_samples())
    out = model(**batch, labels=torch.tensor([3, 0, 2, 1]))
    expected = torch.nn.functional.cross_entropy(out.logits, torch.tensor([3, 0, 2, 1]))
    assert torch.allclose(out.loss, expected)
    out.loss.backward()
    for name in ("score.weight", "projector.linear_1.weight", "language_model.layers.0.mlp.up_proj.weight",
                 "vision_tower.encoder.layers.0.mlp.fc1.weight"):
        grad = model.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_classification_scores_are_expected_levels():
    model, proc = tiny_model_and_processor(num_labels=4, seed=1)
    with torch.no_grad():
        out = model(**proc(_samples()))
    probs = out.logits.softmax(-1)
    assert torch.allclose(out.scores, (probs * torch.arange(4.0)).sum(-1), atol=1e-6)
    assert ((out.scores >= 0) & (out.scores <= 3)).all()


def test_regression_loss_is_mse_on_the_level(tiny):
    model, proc = tiny
    labels = torch.tensor([3.0, 0.0, 2.0, 1.0])
    with torch.no_grad():
        out = model(**proc(_samples()), labels=labels)
    assert out.logits.shape == (4, 1)
    assert out.loss.item() == pytest.approx(((out.scores - labels) ** 2).mean().item(), rel=1e-6)


def test_gradient_checkpointing_recomputes_layers_and_gives_the_same_gradients():
    """Checkpointing is really on in a training forward: each decoder layer runs again in the backward pass
    and the autograd graph keeps fewer activations, while the gradients stay the same."""
    grads, saved, layer_runs = [], [], []
    for checkpointing in (False, True):
        model, proc = tiny_model_and_processor(seed=5)
        model.train()
        if checkpointing:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            assert model.language_model.gradient_checkpointing
        runs = []  # inside the layer: transformers checkpoints `forward`, so hooks on the layer itself run once
        hook = model.language_model.layers[0].mlp.register_forward_pre_hook(lambda *args, runs=runs: runs.append(1))
        packed = []  # tensors the graph keeps for the backward pass (checkpointed regions keep their own)
        with torch.autograd.graph.saved_tensors_hooks(lambda t, packed=packed: packed.append(t.numel()) or t,
                                                      lambda t: t):
            out = model(**proc(_samples()), labels=torch.tensor([3.0, 0.0, 2.0, 1.0]))
        out.loss.backward()
        hook.remove()
        layer_runs.append(len(runs))
        saved.append(sum(packed))
        grads.append(model.get_parameter("language_model.layers.0.self_attn.q_proj.weight").grad.clone())
    assert layer_runs == [1, 2]  # the forward, then the recompute in the backward
    assert saved[1] < 0.8 * saved[0], saved
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_config_defaults_follow_the_official_release():
    cfg = tiny_config()
    model = UniFilterForQualityScoring(cfg)
    assert model.score.bias is None
    assert cfg.num_labels == 1 and cfg.id2label == {0: "quality"}
    from unifilter_hf import UniFilterConfig

    default = UniFilterConfig()
    assert default.num_image_tokens == 144 and default.vision_config.hidden_size == 1152
    assert default.vision_config.image_size == 384 and default.vision_config.vision_use_head is False
    with pytest.raises(ValueError, match="square"):
        UniFilterConfig(num_image_tokens=150)
