"""Micro-batches prepared on host threads while the model runs (`unifilter_hf.host_threads`)."""

import argparse
import io
import threading
import time

import pytest
from PIL import Image

from tests.kit import photo, tiny_model_and_processor
from tests.test_scoring_speed import mixed_samples
from unifilter_hf import Sample
from unifilter_hf.host_threads import default_prepare_workers, prepared_ahead
from unifilter_hf.scoring import QualityScorer
from unifilter_hf.scoring_settings import ScoringSettings, add_scoring_arguments


def _wait_for(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_batches_come_back_in_order_prepared_ahead_on_threads():
    started, lock = [], threading.Lock()
    release = threading.Event()

    def prepare(batch):
        with lock:
            started.append((batch, threading.current_thread().name))
        if batch > 0:
            release.wait(5)  # held until the first result is consumed: the next batch must already be started
        if batch == 4:
            raise ValueError("bad batch")
        return batch * 10

    results = prepared_ahead(list(range(8)), prepare, workers=2)
    first = next(results)
    _wait_for(lambda: len(started) >= 2)
    ahead = len(started)
    release.set()
    rest = list(results)
    assert first == 0 and rest[:3] == [10, 20, 30] and rest[4:] == [50, 60, 70]
    assert isinstance(rest[3], ValueError) and str(rest[3]) == "bad batch"  # yielded, not raised
    assert ahead >= 2  # batch 1 was being prepared while batch 0 was consumed
    assert {name.split("_")[0] for _, name in started} == {"unifilter-prepare"}


def test_at_most_workers_plus_two_batches_are_held_at_once():
    started = []
    results = prepared_ahead(list(range(12)), lambda batch: started.append(batch) or batch, workers=2)
    assert next(results) == 0
    time.sleep(0.3)  # a slow consumer: an unbounded pool would have prepared all 12 by now
    assert 2 <= len(started) <= 4  # the one consumed + workers + 1 waiting
    assert list(results) == list(range(1, 12))


def test_no_workers_prepares_in_line():
    names = []
    out = list(prepared_ahead([[1], [2, 3]], lambda b: names.append(threading.current_thread().name) or sum(b), 0))
    assert out == [1, 5] and set(names) == {threading.current_thread().name}


def test_default_is_in_line_on_cpu_and_threaded_on_a_gpu():
    assert default_prepare_workers("cpu") == 0
    assert 1 <= default_prepare_workers("cuda:0") <= 4  # a device name only: no GPU needed


class _ThreadRecordingProcessor:
    """The real processor, recording which threads call it."""

    def __init__(self, processor):
        self._processor, self.threads = processor, []

    def __getattr__(self, name):
        return getattr(self._processor, name)

    def __call__(self, *args, **kwargs):
        self.threads.append(threading.current_thread().name)
        return self._processor(*args, **kwargs)


def _truncated_jpeg() -> Image.Image:
    """Opens (lazily) but fails when its pixels are read: in the processor, not when the row was read."""
    buf = io.BytesIO()
    photo("coffee", 64).save(buf, "JPEG")
    data = buf.getvalue()
    return Image.open(io.BytesIO(data[: len(data) // 2]))


def test_scorer_with_prepare_workers_gives_the_same_records_and_isolates_a_failing_row():
    model, processor = tiny_model_and_processor("qwen2", seed=4)
    samples = mixed_samples()
    samples.insert(3, Sample.caption(_truncated_jpeg(), "a truncated photo"))
    inline = QualityScorer(model, processor, batch_size=2, prepare_workers=0).score_samples(samples)
    recording = _ThreadRecordingProcessor(processor)
    threaded = QualityScorer(model, recording, batch_size=2, prepare_workers=2).score_samples(samples)
    assert any(name.startswith("unifilter-prepare") for name in recording.threads)
    assert [r.error is None for r in threaded] == [r.error is None for r in inline] == [
        i != 3 for i in range(len(samples))]
    assert "truncated" in threaded[3].error.lower() or "OSError" in threaded[3].error
    assert [r.score for i, r in enumerate(threaded) if i != 3] == [r.score for i, r in enumerate(inline) if i != 3]


def test_the_pipeline_takes_prepare_workers(default_model):
    from transformers import pipeline

    from tests.kit import TASK, caption_rows

    pipe = pipeline(TASK, device="cpu")
    rows = caption_rows(6)
    in_line = [r["score"] for r in pipe(rows, batch_size=2)]
    recording = _ThreadRecordingProcessor(pipe.processor)
    pipe.processor, pipe._scorer = recording, None
    threaded = [r["score"] for r in pipe(rows, batch_size=2, prepare_workers=2)]
    assert threaded == in_line and any(name.startswith("unifilter-prepare") for name in recording.threads)


def test_prepare_workers_is_a_scoring_setting_and_flag():
    parser = argparse.ArgumentParser()
    add_scoring_arguments(parser)
    settings = ScoringSettings.from_args(parser.parse_args(["--prepare-workers", "3"]))
    assert settings.prepare_workers == 3 and "prepare_workers" not in settings.scoring_identity()
    assert settings.build_scorer(*tiny_model_and_processor("qwen2", seed=5)).prepare_workers == 3
    with pytest.raises(SystemExit):
        parser.parse_args(["--prepare-workers", "-1"])
    with pytest.raises(ValueError, match="prepare_workers"):
        ScoringSettings(prepare_workers=-1)
    with pytest.raises(ValueError, match="prepare_workers"):
        QualityScorer(*tiny_model_and_processor("qwen2", seed=5), prepare_workers=-2)
