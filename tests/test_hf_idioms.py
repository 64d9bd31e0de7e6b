"""Issue 24: the everyday Hugging Face idioms, written as a user would, one test per item of the issue."""

import configparser
import json
import math
import os
import re
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import pipeline

from tests.kit import photo, tiny_model_and_processor

TASK = "multimodal-quality-scoring"
ROOT = Path(__file__).resolve().parent.parent


def _pipe(model, processor):
    return pipeline(TASK, model=model, processor=processor, device="cpu")


@pytest.mark.parametrize("how", ["save_pretrained", "push_to_hub"])
def test_item1_plain_save_pretrained_is_a_pipeline_in_a_fresh_process(tmp_path, monkeypatch, how):
    model, proc = tiny_model_and_processor(seed=5)
    if how == "save_pretrained":
        model.save_pretrained(tmp_path)
        proc.save_pretrained(tmp_path)
    else:  # only the HfApi network boundary is replaced: the commit's files land in tmp_path
        from types import SimpleNamespace

        from huggingface_hub import HfApi

        def create_commit(self, **kwargs):
            for op in kwargs["operations"]:
                (tmp_path / op.path_in_repo).write_bytes(Path(op.path_or_fileobj).read_bytes())
            return SimpleNamespace(commit_url="https://huggingface.co/me/scorer/commit/abc", oid="abc")

        monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: SimpleNamespace(repo_id=repo_id))
        monkeypatch.setattr(HfApi, "create_commit", create_commit)
        model.push_to_hub("me/scorer", token="hf_fake")
        proc.push_to_hub("me/scorer", token="hf_fake")
    assert json.loads((tmp_path / "config.json").read_text())["custom_pipelines"][TASK]["impl"] == (
        "pipeline_unifilter.MultimodalQualityScoringPipeline")
    assert getattr(model.config, "custom_pipelines", None) is None  # the in-memory config is left as it was
    photo("coffee", 96).save(tmp_path / "coffee.png")
    expected = _pipe(model, proc)({"image": str(tmp_path / "coffee.png"), "text": "A cup of coffee."})["score"]
    script = textwrap.dedent(f"""
        import json, sys
        sys.modules["unifilter_hf"] = None  # as if not installed: any import of it raises ImportError
        from transformers import pipeline
        pipe = pipeline({TASK!r}, model={str(tmp_path)!r}, trust_remote_code=True, device="cpu")
        out = pipe({{"image": {str(tmp_path / "coffee.png")!r}, "text": "A cup of coffee."}})
        print(json.dumps({{"out": out, "module": type(pipe).__module__}}))
    """)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"))
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["module"].startswith("transformers_modules.")
    assert result["out"]["error"] is None and result["out"]["score"] == pytest.approx(expected, abs=1e-5)


def test_item2_tensors_and_arrays_are_images_in_the_pipeline_and_datasets(tiny):
    import datasets

    from unifilter_hf.filtering import unifilter_score

    model, proc = tiny
    pipe = _pipe(model, proc)
    image = photo("coffee", 64)
    hwc = np.asarray(image)
    chw = torch.from_numpy(hwc).permute(2, 0, 1)
    expected = pipe({"image": image, "text": "A cup."})["score"]
    for form in (hwc, chw, chw.float() / 255, hwc.astype(np.float32) / 255, hwc.transpose(2, 0, 1) / 255.0):
        out = pipe({"image": form, "text": "A cup."})
        assert out["error"] is None and out["score"] == pytest.approx(expected, abs=1e-5)
    normalized = pipe({"image": chw.float() / 127.5 - 1, "text": "A cup."})  # a torchvision-normalized tensor
    assert math.isnan(normalized["score"]) and "un-normalize" in normalized["error"]

    score = unifilter_score(model=model, processor=proc)
    images = [photo(name, 48) for name in ("coffee", "chelsea", "rocket")]
    ds = datasets.Dataset.from_dict({"image": images, "text": ["A cup.", "A cat.", "A rocket."]})
    plain = ds.map(score, batched=True)["unifilter_score"]
    for fmt in ("torch", "numpy", "pandas"):
        for batched in (False, True):
            out = ds.with_format(fmt).map(score, batched=batched, batch_size=2, load_from_cache_file=False)
            out = out.with_format(None)
            assert out["unifilter_error"] == ["", "", ""], (fmt, batched)
            assert out["unifilter_score"] == pytest.approx(plain, abs=1e-5), (fmt, batched)


def test_item3_confusing_calls_get_the_natural_meaning_or_a_clear_error(tiny):
    import datasets

    from unifilter_hf.filtering import unifilter_keep, unifilter_score

    model, proc = tiny
    pipe = _pipe(model, proc)
    image = photo("chelsea", 64)
    row = pipe({"image": image, "text": "A cat."})
    assert pipe(image, "A cat.") == row
    assert pipe(image=image, text="A cat.") == row
    assert pipe([image, image], ["A cat.", "A cat."]) == [row, row]
    with pytest.raises(TypeError, match=r"threshold=2\.5"):
        unifilter_keep(2.5)
    ds = datasets.Dataset.from_dict({"image": [image], "text": ["A cat."]})
    with pytest.raises(TypeError, match="input_columns"):
        ds.map(unifilter_score, input_columns=["image", "text"])
    from_pipe = ds.map(unifilter_score(model=pipe))
    assert from_pipe["unifilter_score"][0] == pytest.approx(row["score"], abs=1e-5)
    assert ds.filter(unifilter_keep(model=pipe, threshold=row["score"] - 1)).num_rows == 1


def test_item4_card_names_the_real_task_and_other_tasks_are_refused(model_dir):
    from huggingface_hub import ModelCard

    from unifilter_hf.training.card import render_card

    report = {"eval_accuracy": 0.55, "eval_macro_f1": 0.48, "eval_spearman": 0.71}
    card = ModelCard(str(render_card("me/scorer", "r.yaml", "loss: mse", report, {"dataset": "shapes_world"})))
    assert card.data.pipeline_tag != "image-text-to-text" and TASK in card.data.tags
    results = {r.metric_name: (r.task_type, r.metric_value) for r in card.data.eval_results}
    assert results == {"Level accuracy": (TASK, 0.55), "Macro F1": (TASK, 0.48), "Spearman": (TASK, 0.71)}
    text_only = pipeline("text-classification", model=str(model_dir))
    with pytest.raises(ValueError, match=TASK):
        text_only("a cup of coffee")
    assert pipeline(TASK, model=str(model_dir))({"image": photo("coffee", 64), "text": "A cup."})["error"] is None


def test_item5_lora_without_targets_adapts_only_the_llm_projections():
    from peft import LoraConfig, get_peft_model

    model, _ = tiny_model_and_processor(seed=1)
    peft_model = get_peft_model(model, LoraConfig(r=4))
    adapted = [n for n, m in peft_model.named_modules() if hasattr(m, "lora_A")]
    assert adapted and all(".language_model." in n for n in adapted)
    assert {n.rsplit(".", 1)[1] for n in adapted} == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert not any("vision_tower" in n for n in adapted)


def test_item6_plain_trainer_with_the_collator(tmp_path, tiny):
    import datasets
    from transformers import Trainer, TrainingArguments

    from unifilter_hf.training import QualityCollator

    _, proc = tiny
    model, _ = tiny_model_and_processor(seed=2)
    rows = [{"image": photo(n, 48), "text": t, "label": level} for n, t, level in
            [("coffee", "A cup of coffee.", 3), ("chelsea", "A rocket.", 0)]]
    ds = datasets.Dataset.from_list(rows)

    def trainer(**extra):
        args = TrainingArguments(str(tmp_path), per_device_train_batch_size=2, max_steps=1, report_to=[],
                                 use_cpu=True, **extra)
        return Trainer(model=model, args=args, train_dataset=ds, data_collator=QualityCollator(proc))

    with pytest.raises(ValueError, match="remove_unused_columns=False"):
        trainer().train()
    result = trainer(remove_unused_columns=False).train()
    assert math.isfinite(result.training_loss)


def test_item7_processor_keywords_and_forward_conventions(tiny):
    model, proc = tiny
    samples = [photo("coffee", 48), photo("chelsea", 48)]
    texts = ["A cup of coffee on a saucer.", "A cat."]
    base = proc(images=samples, text=texts)
    longest = base["input_ids"].shape[1]
    padded = proc(images=samples, text=texts, padding="max_length", max_length=longest + 7)
    assert padded["input_ids"].shape[1] == longest + 7 and int(padded["attention_mask"].sum()) == int(
        base["attention_mask"].sum())
    assert proc(images=samples, text=texts, pad_to_multiple_of=64)["input_ids"].shape[1] % 64 == 0
    as_np = proc(images=samples, text=texts, return_tensors="np")
    assert isinstance(as_np["input_ids"], np.ndarray) and isinstance(as_np["pixel_values"], np.ndarray)
    left = proc(images=samples, text=texts, padding_side="left")
    assert left["attention_mask"][1, 0] == 0 and left["attention_mask"][1, -1] == 1
    with pytest.raises(TypeError, match="unknown keyword"):
        proc(images=samples, text=texts, return_offsets=True)

    with torch.no_grad():
        out = model(**base)
        as_tuple = model(**base, return_dict=False)
        hidden = model(**base, output_hidden_states=True)
        on_left = model(**left)
    assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[0], out.logits) and torch.equal(
        as_tuple[1], out.scores)
    assert len(hidden.hidden_states) == model.config.text_config.num_hidden_layers + 1
    assert torch.allclose(on_left.scores, out.scores, atol=1e-5)

    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="eager")  # fullgraph: any graph break raises
    with torch.no_grad():
        assert torch.allclose(compiled(**base).scores, out.scores, atol=1e-5)


def test_item8_dependency_floors_are_the_tested_versions_and_documented():
    from packaging.requirements import Requirement
    from packaging.version import Version

    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    requirements = [Requirement(line) for line in parser["options"]["install_requires"].split("\n") if line.strip()]
    guide = (ROOT / "docs" / "user_guide.md").read_text()
    pinned = dict(re.findall(r'"?([A-Za-z0-9_-]+)==([0-9.]+)"?', guide))
    for req in requirements:
        installed = Version(metadata.version(req.name))
        floor = next(Version(s.version) for s in req.specifier if s.operator == ">=")
        assert installed in req.specifier, f"{req.name} {installed} does not satisfy {req}"
        # The floor is what the suite runs on: an older floor than the tested minor release is untested.
        assert floor.release[:2] == installed.release[:2], f"{req}: the tests run on {installed}"
        assert Version(pinned[req.name]) == floor, f"docs/user_guide.md must install {req.name}=={floor}"
