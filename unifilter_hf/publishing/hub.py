"""Publishing to the Hub: one preflight check and one push function for every command.

``curate``, ``train``, ``convert`` and ``synth`` take ``--push-to-hub REPO`` (``train``: ``--push_to_hub``) and
call :func:`check_can_push` before any work, so ``HF_HUB_OFFLINE``, an unreachable Hub, or a missing, rejected
or read-only token ends the command in one line before a model is loaded. Each push is one
``HfApi.create_commit`` (all files, one commit) with a commit message that names the settings;
``unifilter-hf push FOLDER REPO_ID`` publishes a finished folder (curation run, checkpoint or synthetic set)
with the same file sets.

Example:
    >>> check_can_push(None)  # nothing to push: no check
    >>> push_folder("out/hq", "me/hq", repo_type="dataset", commit_message="curated")  # doctest: +SKIP
    'https://huggingface.co/datasets/me/hq/commit/...'
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils import filter_repo_objects
from huggingface_hub.utils._paths import DEFAULT_IGNORE_PATTERNS

from ..errors import UniFilterError

# What each kind of folder uploads (patterns relative to the folder, for the hub library's filter_repo_objects).
_TEMPORARIES = [".tmp-*", "*/.tmp-*"]
CURATED_FILES = ["README.md", "manifest.json", "summary.json", "selection.json", "curated/*.parquet", "report/*"]
SCORES_FILES = ["README.md", "manifest.json", "summary.json", "scores/*.parquet", "report/*"]
SYNTH_FILES = ["README.md", "manifest.json", "records.jsonl", "images/*"]
CHECKPOINT_IGNORE = ["checkpoint-*", "checkpoint-*/**", "runs/**"]


class PushError(UniFilterError):
    """A push that cannot work (offline, no token, unknown folder, refused by the Hub); the message is one line.

    A library call raises it like any :class:`~unifilter_hf.errors.UniFilterError`; ``unifilter-hf`` prints it
    and exits with status 2.
    """


def check_can_push(repo_id: str | None, api: HfApi | None = None) -> None:
    """Fail fast (before any data, model or training) when ``repo_id`` is set but a push cannot work: the Hub is
    offline (``HF_HUB_OFFLINE``) or unreachable, there is no token, or the token is rejected or read-only.

    Example:
        >>> import os
        >>> os.environ["HF_HUB_OFFLINE"] = "1"
        >>> try:
        ...     check_can_push("me/x")
        ... except PushError as err:
        ...     print(err)
        cannot push to me/x: HF_HUB_OFFLINE is set; unset it or drop --push-to-hub
    """
    if not repo_id:
        return
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        raise PushError(f"cannot push to {repo_id}: HF_HUB_OFFLINE is set; unset it or drop --push-to-hub")
    if not get_token():
        raise PushError(f"cannot push to {repo_id}: no Hugging Face token; run `hf auth login` or set HF_TOKEN")
    # One call to the Hub now: an unreachable Hub or a rejected token fails here, not after the job.
    try:
        me = (api or HfApi()).whoami(cache=True)
    except Exception as err:  # noqa: BLE001 - network, proxy or auth: all end the command the same way
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise PushError(f"cannot push to {repo_id}: the Hub cannot be reached or refused the token ({first}); "
                        "check the network and `hf auth whoami`") from None
    role = ((me.get("auth") or {}).get("accessToken") or {}).get("role")
    if role == "read":
        raise PushError(f"cannot push to {repo_id}: the token of {me.get('name', '?')} is read-only; "
                        "log in with a write token (`hf auth login`)")


def push_folder(folder: str | Path, repo_id: str, *, repo_type: str, commit_message: str, private: bool = False,
                revision: str | None = None, allow_patterns: Sequence[str] | None = None,
                ignore_patterns: Sequence[str] | None = None, api: HfApi | None = None) -> str:
    """Create ``repo_id`` if needed (and branch ``revision``), then upload ``folder`` in one commit.

    Returns the commit URL. Hub refusals (401, 403, 409, ...) become a one-line :class:`PushError`; the folder
    is left as it is, so the same push can simply be run again.
    """
    api = api or HfApi()
    operations = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(Path(folder) / rel))
                  for rel in files_to_push(folder, allow_patterns, ignore_patterns)]
    if not operations:
        raise PushError(f"cannot push {folder}: no file matches {list(allow_patterns or ['*'])}")
    try:
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        if revision:
            api.create_branch(repo_id, branch=revision, repo_type=repo_type, exist_ok=True)
        # One create_commit, however many files: readers never see half a dataset. (upload_folder splits
        # folders of a few hundred files into several commits when hf_xet is installed.)
        info = api.create_commit(repo_id=repo_id, repo_type=repo_type, operations=operations,
                                 commit_message=commit_message, revision=revision)
    except HfHubHTTPError as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise PushError(f"push to {repo_id} failed ({first}); the folder is complete: run "
                        f"`unifilter-hf push {folder} {repo_id}` again") from None
    return str(getattr(info, "commit_url", info))


def files_to_push(folder: str | Path, allow_patterns: Sequence[str] | None = None,
                  ignore_patterns: Sequence[str] | None = None) -> list[str]:
    """The folder's files (relative POSIX paths) that a push sends: the hub library's own pattern filter and
    default ignores (``.git/``, ``.cache/huggingface/``), and never a temporary ``.tmp-*`` file."""
    root = Path(folder)
    relpaths = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    return list(filter_repo_objects(relpaths, allow_patterns=list(allow_patterns) if allow_patterns else None,
                                    ignore_patterns=[*_TEMPORARIES, *(ignore_patterns or []),
                                                     *DEFAULT_IGNORE_PATTERNS]))


def _read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def curation_commit_message(run_dir: str | Path, *, scores_only: bool = False) -> str:
    """``unifilter-hf curate: top_fraction=0.3 with MODEL (fingerprint abc123): 120 of 400 rows kept``."""
    summary = _read(Path(run_dir) / "summary.json")
    plan, model, total = summary.get("selection", {}), summary.get("model", {}), summary.get("total", {})
    how = (f"threshold={plan['threshold']}" if "threshold" in plan
           else f"top_fraction={plan.get('settings', {}).get('top_fraction')}")
    what = (f"scores of {total.get('in', 0)} rows (sidecars only)" if scores_only
            else f"{total.get('kept', 0)} of {total.get('in', 0)} rows kept")
    return (f"unifilter-hf curate: {how} with {model.get('name', '-')} "
            f"(fingerprint {str(model.get('fingerprint', '-'))[:12]}): {what}")


def push_curation_run(run_dir: str | Path, repo_id: str, *, scores_only: bool = False, private: bool = False,
                      revision: str | None = None, license: str | None = None, commit_message: str | None = None,
                      api: HfApi | None = None) -> str:
    """Push a finished curation run as a dataset repo: curated shards, or the score sidecars alone.

    The card (``README.md``) is rendered again for the variant pushed, so it links the report's histogram
    when ``report/score_histogram.png`` exists by now. ``license`` defaults to the one the card declares.
    """
    from .dataset_cards import card_license, write_curation_card

    run = Path(run_dir)
    if not (run / "summary.json").is_file():
        raise PushError(f"cannot push {run}: no summary.json (the curation job has not finished; run it again)")
    write_curation_card(run, scores_only=scores_only, license=license or card_license(run))
    return push_folder(run, repo_id, repo_type="dataset", private=private, revision=revision,
                       commit_message=commit_message or curation_commit_message(run, scores_only=scores_only),
                       allow_patterns=SCORES_FILES if scores_only else CURATED_FILES, api=api)


def push_checkpoint(folder: str | Path, repo_id: str, *, private: bool = False, revision: str | None = None,
                    commit_message: str | None = None, api: HfApi | None = None) -> str:
    """Push a checkpoint folder (weights, processor, code, card, metrics, figures) as a model repo.

    Trainer leftovers (``checkpoint-*`` folders, ``runs/`` TensorBoard logs) stay behind.
    """
    return push_folder(folder, repo_id, repo_type="model", private=private, revision=revision,
                       commit_message=commit_message or "Upload UniFilter checkpoint with unifilter-hf",
                       ignore_patterns=CHECKPOINT_IGNORE, api=api)


def synth_commit_message(folder: str | Path) -> str:
    """``unifilter-hf synth: 48 records from rule-based (model -, seed 0)``."""
    m = _read(Path(folder) / "manifest.json")
    return (f"unifilter-hf synth: {m.get('records', 0)} records from {m.get('generator', '-')} "
            f"(model {m.get('model') or '-'}, prompt {m.get('prompt_version') or '-'}, seed {m.get('seed', '-')})")


def push_synthetic_set(folder: str | Path, repo_id: str, *, private: bool = False, revision: str | None = None,
                       license: str | None = None, commit_message: str | None = None,
                       api: HfApi | None = None) -> str:
    """Push a ``synth`` output folder (card, records, images, manifest) as a dataset repo."""
    from .dataset_cards import card_license, write_synthetic_card

    write_synthetic_card(folder, license=license or card_license(folder))
    return push_folder(folder, repo_id, repo_type="dataset", private=private, revision=revision,
                       commit_message=commit_message or synth_commit_message(folder),
                       allow_patterns=SYNTH_FILES, api=api)


def folder_kind(folder: str | Path) -> str:
    """``"curation"``, ``"checkpoint"`` or ``"synthetic"``; a one-line :class:`PushError` for anything else."""
    from ..synthesis.records import RECORDS

    path = Path(folder)
    if (path / "manifest.json").is_file() and (path / "summary.json").is_file():
        return "curation"
    if _read(path / "config.json").get("model_type") == "unifilter":
        return "checkpoint"
    if (path / RECORDS).is_file():
        return "synthetic"
    raise PushError(f"cannot push {path}: expected a curation run (manifest.json + summary.json), a UniFilter "
                    f"checkpoint (config.json with model_type unifilter) or a synth folder ({RECORDS})")


def push_any(folder: str | Path, repo_id: str, *, private: bool = False, revision: str | None = None,
             scores_only: bool = False, license: str | None = None, commit_message: str | None = None,
             api: HfApi | None = None) -> str:
    """Push an existing folder, whatever it is (see :func:`folder_kind`); what ``unifilter-hf push`` runs."""
    kind = folder_kind(folder)
    if scores_only and kind != "curation":
        raise PushError(f"--scores-only applies to a curation run; {folder} is a {kind} folder")
    common = {"private": private, "revision": revision, "commit_message": commit_message, "api": api}
    if kind == "curation":
        return push_curation_run(folder, repo_id, scores_only=scores_only, license=license, **common)
    if kind == "synthetic":
        return push_synthetic_set(folder, repo_id, license=license, **common)
    return push_checkpoint(folder, repo_id, **common)


def add_push_flags(parser: argparse.ArgumentParser, *, license: bool = False) -> None:
    """``--push-to-hub REPO --private --hub-revision BRANCH`` (and ``--license``) for a command."""
    parser.add_argument("--push-to-hub", metavar="REPO", help="publish the result to this Hub repo (needs a token)")
    parser.add_argument("--private", action="store_true", default=None, help="with --push-to-hub: a private repo")
    parser.add_argument("--hub-revision", metavar="BRANCH", help="with --push-to-hub: the branch to push to")
    if license:
        parser.add_argument("--license", help="license id for the dataset card (default: the source's, as `other`)")


def _push(args: argparse.Namespace) -> int:
    check_can_push(args.repo_id)
    url = push_any(args.folder, args.repo_id, private=bool(args.private), revision=args.hub_revision,
                   scores_only=args.scores_only, license=args.license, commit_message=args.commit_message)
    print(f"pushed {args.folder} -> {args.repo_id}: {url}")
    return 0


def register(subparsers) -> None:
    """Add ``push FOLDER REPO_ID`` to the ``unifilter-hf`` command."""
    p = subparsers.add_parser(
        "push", help="publish a finished folder (curation run, checkpoint, synth set) to the Hub",
        description="Push a curation run folder (dataset), a trained or converted checkpoint (model) or a synth "
        "output folder (dataset) to the Hub in one commit, with its card.")
    p.add_argument("folder", help="a curation --output, a train --output_dir / convert DST, or a synth --output")
    p.add_argument("repo_id", help="Hub repo id, e.g. me/my-curated-set")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--hub-revision", metavar="BRANCH", help="push to this branch (created if missing)")
    p.add_argument("--scores-only", action="store_true", help="curation run: the score sidecars, not the rows")
    p.add_argument("--license", help="license id for a dataset card (default: what the card declares)")
    p.add_argument("--commit-message", help="default: one naming the settings")
    p.set_defaults(func=_push)


__all__ = ["PushError", "check_can_push", "folder_kind", "push_any", "push_checkpoint", "push_curation_run",
           "push_folder", "push_synthetic_set"]
