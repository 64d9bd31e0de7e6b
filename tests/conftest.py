"""Test settings: fully offline, small thread count, a private HF cache."""

import os
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Remote-code loads copy modules into $HF_HOME/modules; keep them out of the user's cache.
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="unifilter-hf-home-"))

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny():
    """A tiny random Qwen2-backed UniFilter (regression head) and its processor."""
    from tests.kit import tiny_model_and_processor

    return tiny_model_and_processor("qwen2")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """A saved tiny regression model whose head is fitted so that real photos score across 0..3.

    With a random head every score sits near 0 and a threshold of 2 would keep nothing; a least-squares
    head on a few captions spreads the scores so that filters keep some rows and drop others.
    """
    from tests.kit import photo, tiny_model_and_processor
    from unifilter_hf import Sample

    model, proc = tiny_model_and_processor("qwen2", seed=11)
    texts = ["A cup of coffee.", "A cat.", "A rocket on a pad.", "A temple roof.", "A flower.", "Astronaut."]
    names = ["coffee", "chelsea", "rocket", "china", "flower", "astronaut"]
    pooled = []
    hook = model.score.register_forward_hook(lambda mod, args, out: pooled.append(args[0]))
    with torch.no_grad():
        model(**proc([Sample.caption(photo(n), t) for n, t in zip(names, texts)]))
    hook.remove()
    targets = torch.linspace(0.2, 3.2, len(names))[:, None]
    weight = torch.linalg.lstsq(pooled[0], targets).solution.T
    model.score.weight.data.copy_(weight)
    folder = tmp_path_factory.mktemp("tiny-unifilter")
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    return folder


@pytest.fixture
def default_model(model_dir, monkeypatch):
    """Point the package default (UNIFILTER_MODEL) at the tiny model, as a user would at a checkpoint."""
    monkeypatch.setenv("UNIFILTER_MODEL", str(model_dir))
    return model_dir


@pytest.fixture
def count_scored(monkeypatch):
    """Counts the samples that reach the model (every path goes through QualityScorer.score_samples)."""
    from unifilter_hf.scoring import QualityScorer

    seen = []
    real = QualityScorer.score_samples
    monkeypatch.setattr(QualityScorer, "score_samples", lambda self, s: seen.append(len(s)) or real(self, s))
    return seen


@pytest.fixture
def hub_style_parquet(tmp_path):
    """Three caption rows and a truncated JPEG in a Parquet file with a decoded ``Image()`` column, as on the Hub."""
    import datasets

    from tests.badrows import image_dict, truncated_jpeg
    from tests.kit import caption_rows

    rows = caption_rows(3) + [{"image": image_dict(truncated_jpeg()[:200]), "text": "A broken image."}]
    features = datasets.Features({"image": datasets.Image(), "text": datasets.Value("string")})
    path = tmp_path / "hub.parquet"
    datasets.Dataset.from_list(rows, features=features).to_parquet(path)
    return path
