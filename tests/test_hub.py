"""Hub publishing: exact files, cards and commit messages of every push, and the fail-fast checks.

Only the ``HfApi`` boundary is replaced (``create_repo``, ``create_branch``, ``create_commit`` record their
calls; the uploaded files are the operations of the one commit), so nothing reaches the
network: a push test sets a fake token and unsets ``HF_HUB_OFFLINE`` inside its own monkeypatch.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from huggingface_hub import DatasetCard, HfApi, ModelCard

from tests.test_curation import write_caption_shards
from unifilter_hf.cli import main
from unifilter_hf.curation import CurateConfig, curate, load_summary
from unifilter_hf.publishing.curation_run import finish_curation

REPO = "someone/curated"
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "official-tiny-qwen2" / "checkpoint"


@pytest.fixture
def hub(monkeypatch):
    """Record HfApi calls; a fake token and HF_HUB_OFFLINE unset, only for this test."""
    calls: list[tuple[str, dict]] = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))

    def create_branch(self, repo_id, **kwargs):
        calls.append(("create_branch", {"repo_id": repo_id, **kwargs}))

    def create_commit(self, **kwargs):
        ops = kwargs.pop("operations")
        assert all(Path(op.path_or_fileobj).is_file() for op in ops)
        calls.append(("create_commit", {**kwargs, "files": sorted(op.path_in_repo for op in ops)}))
        return f"https://huggingface.co/{kwargs['repo_id']}/commit/abc"

    def whoami(self, token=None, cache=False):
        return {"name": "someone", "auth": {"accessToken": {"role": "write"}}}

    for name, fn in (("create_repo", create_repo), ("create_branch", create_branch),
                     ("create_commit", create_commit), ("whoami", whoami)):
        monkeypatch.setattr(HfApi, name, fn)
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    return calls


def _names(calls):
    return [name for name, _ in calls]


def _files(folder: Path, sub: str) -> list[str]:
    return sorted(f"{sub}/{p.name}" for p in (folder / sub).glob("*.parquet") if not p.name.startswith(".tmp-"))


def _report_files(folder: Path) -> list[str]:
    return sorted(f"report/{p.name}" for p in (folder / "report").iterdir())


def test_curate_pushes_curated_rows_with_card_and_settings_message(hub, tmp_path, model_dir):
    src = write_caption_shards(tmp_path / "src", shards=2, rows=4)
    out = tmp_path / "run"
    assert main(["curate", str(src), "--output", str(out), "--model", str(model_dir), "--threshold", "1.5",
                 "--batch-size", "2", "--quiet", "--push-to-hub", REPO, "--private", "--hub-revision", "v1",
                 "--no-report"]) == 0
    summary = load_summary(out)
    assert _names(hub) == ["create_repo", "create_branch", "create_commit"]
    assert hub[0][1] == {"repo_id": REPO, "repo_type": "dataset", "private": True, "exist_ok": True}
    assert hub[1][1] == {"repo_id": REPO, "branch": "v1", "repo_type": "dataset", "exist_ok": True}
    up = hub[2][1]
    assert up["repo_type"] == "dataset" and up["revision"] == "v1"
    assert up["files"] == sorted(["README.md", "manifest.json", "selection.json", "summary.json",
                                  *_files(out, "curated")])  # never scores/, rejected/ or temporaries
    assert len(_files(out, "curated")) == 2 and (out / "rejected").is_dir() and (out / "scores").is_dir()
    fingerprint = summary["model"]["fingerprint"]
    total = summary["total"]
    assert up["commit_message"] == (f"unifilter-hf curate: threshold=1.5 with {model_dir} (fingerprint "
                                    f"{fingerprint[:12]}): {total['kept']} of {total['in']} rows kept")
    card = DatasetCard.load(out / "README.md")
    assert card.data.configs == [{"config_name": "default",
                                  "data_files": [{"split": "train", "path": "curated/*.parquet"}]}]
    assert card.data.tags == ["unifilter", "data-filtering"] and card.data.license == "other"
    c = summary["counts"]["caption"]
    for fact in (str(src), fingerprint, str(model_dir), "at least **1.5**", "the source's license applies",
                 f"| caption | {c['in']} | {c['kept']} | {c['rejected']} | {c['errors']} |", "split | `train`"):
        assert fact in card.text, fact
    assert "score_histogram" not in card.text  # no report yet: no dangling image link


def test_push_command_adds_report_and_histogram_and_skips_temporaries(hub, tmp_path, model_dir, capsys):
    src = write_caption_shards(tmp_path / "src", shards=2, rows=3, corrupt=False)
    out = tmp_path / "run"
    config = CurateConfig(source=str(src), output=str(out), model=str(model_dir), top_fraction=0.5, quiet=True)
    finish_curation(curate(config), config)
    assert (out / "README.md").is_file() and hub == []  # Hub-ready without any push
    report = _report_files(out)
    assert "report/report.html" in report and "report/score_histogram.png" in report
    (out / "curated" / ".tmp-123-part-00.parquet").write_bytes(b"partial")
    assert main(["push", str(out), REPO, "--license", "cc-by-4.0"]) == 0
    assert _names(hub) == ["create_repo", "create_commit"]
    up = hub[1][1]
    assert up["files"] == sorted(["README.md", "manifest.json", "selection.json", "summary.json", *report,
                                  *_files(out, "curated")])
    assert up["revision"] is None and hub[0][1]["private"] is False
    assert up["commit_message"].startswith("unifilter-hf curate: top_fraction=0.5 with ")
    card = DatasetCard.load(out / "README.md")
    assert card.data.license == "cc-by-4.0"
    assert "![Score histogram](report/score_histogram.png)" in card.text
    assert "top **0.5** fraction" in card.text
    assert f"pushed {out} -> {REPO}" in capsys.readouterr().out


def test_curate_scores_only_from_the_command_line(hub, tmp_path, model_dir):
    src = write_caption_shards(tmp_path / "src", shards=2, rows=3)
    out = tmp_path / "run"
    assert main(["curate", str(src), "--output", str(out), "--model", str(model_dir), "--top-fraction", "0.5",
                 "--quiet", "--push-to-hub", REPO, "--push-scores-only", "--license", "mit"]) == 0
    up = hub[-1][1]
    assert up["files"] == sorted(["README.md", "manifest.json", "summary.json", *_files(out, "scores"),
                                  *_report_files(out)])
    summary = json.loads((out / "summary.json").read_text())
    assert up["commit_message"].endswith(f"scores of {summary['total']['in']} rows (sidecars only)")
    card = DatasetCard.load(out / "README.md")
    assert card.data.configs[0]["data_files"][0]["path"] == "scores/*.parquet" and card.data.license == "mit"
    assert "score sidecars only" in card.text
    manifest = json.loads((out / "manifest.json").read_text())
    assert "push_to_hub" not in json.dumps(manifest)  # publishing settings are not the scoring identity


@pytest.mark.parametrize("offline", [True, False])
def test_curate_refuses_before_any_work_offline_or_without_token(offline, tmp_path, monkeypatch, capsys):
    import unifilter_hf.curation.job as job
    import unifilter_hf.publishing.hub as hub_module

    monkeypatch.setattr(job, "scan_source", lambda *a, **k: pytest.fail("source opened before the check"))
    monkeypatch.setattr(job, "_load_scorer", lambda *a, **k: pytest.fail("model loaded before the check"))
    if not offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        monkeypatch.setattr(hub_module, "get_token", lambda: None)
    out = tmp_path / "run"
    assert main(["curate", str(tmp_path), "--output", str(out), "--threshold", "2", "--push-to-hub", REPO]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("HF_HUB_OFFLINE" if offline else "hf auth login") in err
    assert not out.exists()  # no manifest.json, nothing


@pytest.mark.parametrize("hub_answer", ["unreachable", "read-only"])
def test_curate_refuses_an_unreachable_hub_or_a_read_only_token_before_any_work(hub_answer, hub, tmp_path,
                                                                                monkeypatch, capsys):
    import unifilter_hf.curation.job as job

    def whoami(self, token=None, cache=False):
        if hub_answer == "unreachable":
            raise ConnectionError("[Errno -3] Temporary failure in name resolution")
        return {"name": "someone", "auth": {"accessToken": {"role": "read"}}}

    monkeypatch.setattr(HfApi, "whoami", whoami)
    monkeypatch.setattr(job, "scan_source", lambda *a, **k: pytest.fail("source opened before the check"))
    out = tmp_path / "run"
    assert main(["curate", str(tmp_path), "--output", str(out), "--threshold", "2", "--push-to-hub", REPO]) == 2
    err = capsys.readouterr().err
    expected = "name resolution" if hub_answer == "unreachable" else "read-only"
    assert err.count("\n") == 1 and expected in err and REPO in err
    assert not out.exists() and hub == []


def test_convert_and_synth_refuse_before_any_work(tmp_path, monkeypatch, capsys):
    import unifilter_hf.official as official

    monkeypatch.setattr(official, "convert_official_checkpoint", lambda *a, **k: pytest.fail("converted"))
    assert main(["convert", str(FIXTURE), str(tmp_path / "native"), "--push-to-hub", REPO]) == 2
    assert main(["synth", "--bundled", "--output", str(tmp_path / "synth"), "--push-to-hub", REPO]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all("HF_HUB_OFFLINE is set" in line for line in err)
    assert not (tmp_path / "native").exists() and not (tmp_path / "synth").exists()


def test_convert_pushes_the_native_checkpoint(hub, tmp_path):
    dst = tmp_path / "native"
    assert main(["convert", str(FIXTURE), str(dst), "--push-to-hub", "someone/native", "--private",
                 "--hub-revision", "fp32"]) == 0
    assert _names(hub) == ["create_repo", "create_branch", "create_commit"]
    assert hub[0][1]["repo_type"] == "model" and hub[0][1]["private"] is True
    up = hub[2][1]
    assert up["revision"] == "fp32" and up["files"] == sorted(
        p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file())
    assert up["commit_message"] == (f"unifilter-hf convert: official {FIXTURE} -> native unifilter checkpoint "
                                    "(weights renamed, not retrained)")
    assert "unifilter" in ModelCard.load(dst / "README.md").data.tags


def test_push_command_checkpoint_leaves_trainer_leftovers(hub, tmp_path, model_dir):
    folder = tmp_path / "ckpt"
    shutil.copytree(model_dir, folder)
    (folder / "checkpoint-5").mkdir()
    (folder / "checkpoint-5" / "optimizer.pt").write_bytes(b"x")
    (folder / "runs" / "x").mkdir(parents=True)
    (folder / "runs" / "x" / "events").write_bytes(b"x")
    assert main(["push", str(folder), "someone/ckpt", "--commit-message", "first weights"]) == 0
    up = hub[-1][1]
    assert up["repo_type"] == "model" and up["commit_message"] == "first weights"
    assert up["files"] == sorted(p.name for p in model_dir.iterdir() if p.is_file())


def test_synth_pushes_records_images_and_card(hub, tmp_path):
    out = tmp_path / "synth"
    assert main(["synth", "--bundled", "--kind", "caption", "--limit", "2", "--output", str(out),
                 "--push-to-hub", "someone/synth"]) == 0
    (out / ".cache").mkdir(exist_ok=True)
    up = hub[-1][1]
    images = sorted(f"images/{p.name}" for p in (out / "images").iterdir())
    assert up["repo_type"] == "dataset" and up["files"] == sorted(
        ["README.md", "manifest.json", "records.jsonl", *images])
    assert up["commit_message"] == "unifilter-hf synth: 8 records from rule-based (model -, prompt " + json.loads(
        (out / "manifest.json").read_text())["prompt_version"] + ", seed 0)"
    card = DatasetCard.load(out / "README.md")
    assert card.data.configs[0]["data_files"][0]["path"] == "records.jsonl" and card.data.license == "other"
    assert "| caption | 3 | 2 |" in card.text and "rule-based" in card.text


def test_push_command_rejects_an_unknown_folder_and_hub_refusals_in_one_line(hub, tmp_path, capsys):
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    assert main(["push", str(tmp_path), REPO]) == 2
    assert "expected a curation run" in capsys.readouterr().err

    def refuse(self, **kwargs):
        request = httpx2.Request("POST", "https://huggingface.co/api/datasets/someone/x/commit/main")
        raise HfHubHTTPError("403 Forbidden: you cannot write to someone/x\nmore detail",
                             response=httpx2.Response(403, request=request))

    (tmp_path / "records.jsonl").write_text("")
    HfApi.create_commit = refuse  # undone by the hub fixture's monkeypatch
    assert main(["push", str(tmp_path), "someone/x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "403 Forbidden" in err and "run `unifilter-hf push" in err
