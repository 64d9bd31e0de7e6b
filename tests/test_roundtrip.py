"""save_pretrained folders reload with the Auto classes and, in a fresh process, as remote code."""

import json
import os
import subprocess
import sys
import textwrap

import torch
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoProcessor

from tests.kit import photo, tiny_model_and_processor
from unifilter_hf import Sample, UniFilterForQualityScoring, UniFilterProcessor

CASES = [
    ("caption", "images/coffee.png", "A cup of coffee with a spoon on a saucer."),
    ("document", ["Our trip.", "images/china.png", "Coffee break.", "images/coffee.png"], None),
]


def _write_cases(folder):
    (folder / "images").mkdir()
    for name in ("coffee", "china"):
        photo(name).save(folder / "images" / f"{name}.png")
    (folder / "cases.json").write_text(json.dumps(CASES))


def _load_cases(folder):
    from PIL import Image

    samples = []
    for kind, a, b in CASES:
        if kind == "caption":
            samples.append(Sample.caption(Image.open(folder / a), b))
        else:
            slots = [Image.open(folder / s) if s.startswith("images/") else s for s in a]
            samples.append(Sample.document([s if isinstance(s, str) else None for s in slots],
                                           [None if isinstance(s, str) else s for s in slots]))
    return samples


def test_auto_classes_round_trip(tmp_path):
    model, proc = tiny_model_and_processor(num_labels=4, seed=7)
    model.save_pretrained(tmp_path)
    proc.save_pretrained(tmp_path)
    _write_cases(tmp_path)
    samples = _load_cases(tmp_path)
    with torch.no_grad():
        expected = model(**proc(samples)).logits

    assert isinstance(AutoConfig.from_pretrained(tmp_path).num_image_tokens, int)
    for auto in (AutoModel, AutoModelForSequenceClassification, UniFilterForQualityScoring):
        loaded = auto.from_pretrained(tmp_path).eval()
        assert type(loaded) is UniFilterForQualityScoring
        back_proc = AutoProcessor.from_pretrained(tmp_path)
        assert type(back_proc) is UniFilterProcessor
        with torch.no_grad():
            assert torch.equal(loaded(**back_proc(samples)).logits, expected)


def test_remote_code_in_a_fresh_process(tmp_path):
    model, proc = tiny_model_and_processor(num_labels=1, seed=8)
    model.save_pretrained(tmp_path)
    proc.save_pretrained(tmp_path)
    # The model trio and what it imports, plus the pipeline and what it imports (so that the folder runs as a
    # pipeline where unifilter-hf is not installed); nothing else.
    assert {p for p in os.listdir(tmp_path) if p.endswith(".py")} == {
        "modeling_unifilter.py", "configuration_unifilter.py", "processing_unifilter.py", "sample.py",
        "image_conversion.py", "quality_losses.py", "levels.py", "errors.py", "document_slots.py",
        "pipeline_unifilter.py", "scoring.py", "row_layouts.py", "image_loading.py", "calibration.py",
        "quality_metrics.py", "local_files.py", "safe_fetch.py", "compilation.py", "micro_batches.py",
        "host_threads.py",
    }
    _write_cases(tmp_path)
    with torch.no_grad():
        expected = model(**proc(_load_cases(tmp_path))).scores.tolist()

    # The child never imports unifilter_hf: everything comes from the folder's auto_map and copied code.
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.modules["unifilter_hf"] = None  # as if not installed: any import of it raises ImportError
        import torch
        from PIL import Image
        from transformers import AutoModelForSequenceClassification, AutoProcessor
        folder = {str(tmp_path)!r}
        model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True).eval()
        proc = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
        Sample = sys.modules[type(proc).__module__.rsplit(".", 1)[0] + ".sample"].Sample
        samples = []
        for kind, a, b in json.load(open(folder + "/cases.json")):
            if kind == "caption":
                samples.append(Sample.caption(Image.open(folder + "/" + a), b))
            else:
                texts = [None if s.startswith("images/") else s for s in a]
                images = [Image.open(folder + "/" + s) if s.startswith("images/") else None for s in a]
                samples.append(Sample.document(texts, images))
        with torch.no_grad():
            scores = model(**proc(samples)).scores.tolist()
        assert sys.modules["unifilter_hf"] is None, "the package must not be imported"
        print(json.dumps({{"scores": scores, "module": type(model).__module__}}))
        """
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"))
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["module"].startswith("transformers_modules.")
    assert result["scores"] == expected
