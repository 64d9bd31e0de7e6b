"""The demo's five stages, each reusing what an earlier run already built: data, model, curation, ablation, publish.

1. data: the shapes-world four-level set (validation scenes), the bundled photo four-level set, the mixed pool;
2. model: ``recipes/quickstart/train.yaml`` through the real trainer (:func:`unifilter_hf.training.run.train`);
3. curation: the pool through :func:`unifilter_hf.curation.curate` with a top-fraction selection;
4. ablation: the same small CLIP trained on what UniFilter, random, CLIP-score and the oracle keep
   (:func:`unifilter_hf.ablation.ablate`, docs/ablation.md), ``ablation.json`` in the curation folder;
5. publish: where each Hub-ready folder is and the command that pushes it.

A stage is reused when its stamp (``OUT/.demo/<stage>.json``) records the same settings (for the model: the
recipe text's hash and the overrides; for the ablation: its settings and the hashes of the pool and of the
curation's scores) and its outputs exist; curation is cheap and always redone. ``fresh=True`` deletes ``OUT``
first.

Example:
    >>> summary = run_demo("out/demo")  # doctest: +SKIP
    [1/5] data: ...
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import UniFilterError
from .pool import POOL_FILE, build_pool, dump_json, level_means, write_photo_set, write_shapes_world

RECIPE = Path("recipes") / "quickstart" / "train.yaml"
# A pool of four levels in equal shares: a perfect scorer keeps exactly the level-3 rows at 0.25.
TOP_FRACTION = 0.25
# What fresh 2-core machines got from the quickstart recipe, seeds 0, 1 and 2 (docs/training.md, "Results").
QUICKSTART_ACCURACY = (0.662, 0.721)
# Edited captions are level 1 (three edits) or level 2 (one edit), equally many: a model that cannot see which
# edit the image contradicts gets at most the commoner level's share, 0.5, on every edit kind.
EDIT_CHANCE = 0.5


class DemoError(UniFilterError, RuntimeError):
    """A problem the user can fix, told in one line (the CLI exits 2 with it)."""


@dataclass
class DemoSizes:
    """How big the demo is. The defaults are the real demo; :meth:`quick` is for tests.

    Example:
        >>> DemoSizes.quick().train_overrides[:2]
        ['--train_scenes', '16']
    """

    shapes_scenes: int = 500  # validation scenes written to data/shapes-world (the pool's source)
    # Of those, scenes that become caption rows (the rest: documents). 400, not 100: the ablation's downstream
    # CLIP trained on 100 pairs was too noisy to tell the filters apart reliably (docs/ablation.md).
    caption_scenes: int = 400
    broken_per_defect: int = 3
    train_overrides: list[str] = field(default_factory=list)  # appended to the recipe, e.g. ["--max_steps", "2"]
    photos: bool = True  # build the bundled photo set (not scored: the quickstart model knows only shapes)
    ablation_seeds: int = 3  # the downstream ablation: seeds 0..n-1, training steps, held-out pairs
    ablation_steps: int = 300
    ablation_eval_pairs: int = 250

    @classmethod
    def quick(cls) -> DemoSizes:
        """A demo of a few seconds per stage: 2 training steps, a 44-row pool."""
        return cls(shapes_scenes=16, caption_scenes=6, broken_per_defect=2, photos=False, ablation_seeds=2,
                   ablation_steps=3, ablation_eval_pairs=16, train_overrides=[
            "--train_scenes", "16", "--validation_scenes", "4", "--max_steps", "2", "--logging_steps", "1",
            "--dataloader_num_workers", "0", "--disable_tqdm", "true"])


def blind_model_warning(per_edit: dict[str, float] | None) -> str | None:
    """A warning when every edit kind's accuracy is at chance: the model reads the caption, not the image.

    Example:
        >>> blind_model_warning({"colour": 0.46, "shape": 0.44}) is not None, blind_model_warning({"colour": 0.7})
        (True, None)
    """
    if not per_edit or any(acc > EDIT_CHANCE for acc in per_edit.values()):
        return None
    shown = ", ".join(f"{kind} {acc:.2f}" for kind, acc in sorted(per_edit.items()))
    return (f"WARNING: the model looks blind to the image: accuracy on edited captions is at chance "
            f"(<= {EDIT_CHANCE}) for every edit kind ({shown}); its scores follow the caption alone. "
            "Train again with another --seed or more steps (docs/training.md).")


def find_recipe() -> Path:
    """The quickstart recipe of the repository this package runs from (recipes/ is not in the package)."""
    path = Path(__file__).resolve().parents[2] / RECIPE
    if not path.is_file():
        raise DemoError(f"{RECIPE} not found next to the package: run the demo from a clone of the repository "
                        "(git clone ...; make demo)")
    return path


def _reuse(stamp: Path, settings: dict, outputs: Sequence[Path]) -> bool:
    if not stamp.is_file() or not all(p.exists() for p in outputs):
        return False
    return json.loads(stamp.read_text()) == settings


def _print(line: str, echo: Callable[[str], None] | None) -> None:
    (echo or print)(line)


def run_demo(output: str | Path = "out/demo", *, fresh: bool = False, sizes: DemoSizes | None = None,
             user: str = "<your-name>", echo: Callable[[str], None] | None = None) -> dict:
    """Run the four stages under ``output``; returns the summary also written to ``OUT/demo_summary.json``."""
    recipe = find_recipe()  # before anything is written
    _quiet_libraries()
    sizes = sizes or DemoSizes()
    out = Path(output)
    if fresh and out.exists():
        shutil.rmtree(out)
    stamps = out / ".demo"
    stamps.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    summary: dict = {"output": str(out), "sizes": asdict(sizes), "stages": {}, "top_fraction": TOP_FRACTION}

    # -- 1. data
    t0 = time.perf_counter()
    shapes_dir, photos_dir, pool_dir = out / "data" / "shapes-world", out / "data" / "photos", out / "pool"
    data_settings = {k: v for k, v in asdict(sizes).items() if k != "train_overrides"}
    if _reuse(stamps / "data.json", data_settings, [shapes_dir, pool_dir / POOL_FILE]):
        counts, status = json.loads((stamps / "data-counts.json").read_text()), "reused"
    else:
        shapes = write_shapes_world(shapes_dir, sizes.shapes_scenes)
        counts = {"pool": build_pool(shapes, pool_dir, sizes.caption_scenes, sizes.broken_per_defect),
                  "shapes_rows": 4 * sizes.shapes_scenes}
        if sizes.photos:
            counts["photos"] = write_photo_set(photos_dir)
        dump_json(stamps / "data-counts.json", counts)
        dump_json(stamps / "data.json", data_settings)
        status = "built"
    pool = counts["pool"]
    photos = counts.get("photos")
    _print(f"[1/5] data ({status}, {time.perf_counter() - t0:.0f}s): shapes world {counts['shapes_rows']} rows "
           f"-> {shapes_dir}; " + (f"bundled photos {photos['records']} rows -> {photos_dir}; " if photos else "")
           + f"pool {pool['rows']} rows ({pool['caption']} captions, {pool['document']} documents, "
           f"{pool['broken']} broken on purpose) -> {pool_dir}", echo)
    if photos:
        _print("      the quickstart model knows only the shapes world (its vocabulary is the shapes words), so it "
               "curates shapes captions and documents; the photo set is built to publish, not scored.", echo)
    summary["stages"]["data"] = {"status": status, "seconds": round(time.perf_counter() - t0, 1), **counts}

    # -- 2. model
    t0 = time.perf_counter()
    model_dir = out / "model"
    model_settings = {"recipe_sha256": hashlib.sha256(recipe.read_bytes()).hexdigest(),
                      "overrides": list(sizes.train_overrides)}
    if _reuse(stamps / "model.json", model_settings, [model_dir / "metrics.json", model_dir / "config.json"]):
        status = "reused"
    else:
        from ..training.run import train

        _print(f"[2/5] model: training {RECIPE} on CPU (the longest stage) ...", echo)
        (stamps / "model.json").unlink(missing_ok=True)
        train(["--config", str(recipe), "--output_dir", str(model_dir), *sizes.train_overrides])
        dump_json(stamps / "model.json", model_settings)
        status = "trained"
    metrics = json.loads((model_dir / "metrics.json").read_text())
    q = metrics["quality_metrics"]
    _print(f"[2/5] model ({status}, {time.perf_counter() - t0:.0f}s): validation accuracy {q['accuracy']:.3f}, "
           f"macro-F1 {q['macro_f1']:.3f}, pairwise ranking accuracy {q['pairwise_accuracy']:.3f} "
           f"on {q['num_examples']} unseen rows -> {model_dir}", echo)
    _print(f"      (fresh 2-core machines get accuracy {QUICKSTART_ACCURACY[0]:.2f}-{QUICKSTART_ACCURACY[1]:.2f} over "
           "seeds 0-2 of this recipe; docs/training.md)", echo)
    _print(format_confusion(q["confusion_matrix"]), echo)
    warning = blind_model_warning(metrics.get("eval_accuracy_per_edit"))
    if warning:
        _print(warning, echo)
    summary["stages"]["model"] = {"status": status, "seconds": round(time.perf_counter() - t0, 1),
                                  "train_seconds": metrics.get("run", {}).get("train_seconds")}
    summary["metrics"] = {k: q[k] for k in ("accuracy", "macro_f1", "pairwise_accuracy", "confusion_matrix",
                                            "num_examples", "spearman") if k in q}
    summary["metrics"]["accuracy_per_edit"] = metrics.get("eval_accuracy_per_edit")
    summary["metrics"]["blind_to_images"] = warning is not None

    # -- 3. curation (cheap: always redone, so it always matches the data and the model above)
    from ..curation import CurateConfig, curate, load_summary
    from ..publishing.curation_run import finish_curation

    t0 = time.perf_counter()
    curation_dir = out / "curation"
    curation = CurateConfig(source=str(pool_dir), output=str(curation_dir), model=str(model_dir),
                            top_fraction=TOP_FRACTION, quiet=True, overwrite=True)
    finish_curation(curate(curation), curation)
    result = load_summary(curation_dir)
    means = level_means(curation_dir, pool_dir / POOL_FILE)
    pm, km = means["pool_mean_level"], means["kept_mean_level"]
    _print(f"[3/5] curation ({time.perf_counter() - t0:.0f}s): kept the top {TOP_FRACTION:.0%} by score: "
           f"{means['kept']} kept, {means['rejected']} rejected ({len(means['errors'])} of them unreadable) "
           f"of {means['rows']} -> {curation_dir}", echo)
    _print(f"      mean true level (0..3): pool {_fmt(pm['all'])} -> kept {_fmt(km['all'])}   "
           f"(captions {_fmt(pm['caption'])} -> {_fmt(km['caption'])}, documents {_fmt(pm['document'])} -> "
           f"{_fmt(km['document'])})", echo)
    summary["stages"]["curation"] = {"status": "ran", "seconds": round(time.perf_counter() - t0, 1),
                                     "total": result["total"], "errors_by_reason": result["errors_by_reason"]}
    summary["levels"] = means

    # -- 4. ablation: reused while the pool, the scores above and its settings are those it ran on
    from ..ablation import AblationSettings, ablate, format_table
    from ..ablation.clip_model import ClipRecipe
    from ..ablation.run import ABLATION_FILE
    from ..ablation.sets import read_scores
    from ..publishing.curation_run import write_report_or_warn

    t0 = time.perf_counter()
    ablation = AblationSettings(top_fraction=TOP_FRACTION, seeds=tuple(range(sizes.ablation_seeds)),
                                eval_pairs=sizes.ablation_eval_pairs, recipe=ClipRecipe(steps=sizes.ablation_steps))
    scores = json.dumps(sorted(read_scores(curation_dir).items()))
    ablation_settings = json.loads(json.dumps({  # through JSON, as the stamp reads back (tuples become lists)
        "settings": asdict(ablation), "pool_sha256": hashlib.sha256((pool_dir / POOL_FILE).read_bytes()).hexdigest(),
        "scores_sha256": hashlib.sha256(scores.encode()).hexdigest()}))
    kept = stamps / "ablation-result.json"  # curate above rewrote the run folder: the result is kept here
    if _reuse(stamps / "ablation.json", ablation_settings, [kept]):
        shutil.copyfile(kept, curation_dir / ABLATION_FILE)
        status = "reused"
    else:
        _print(f"[4/5] ablation: the same small CLIP trained on {TOP_FRACTION:.0%} of the pool's captions as kept "
               f"by each filter (one caption per image: each filter's best), {sizes.ablation_seeds} seeds "
               "(docs/ablation.md) ...", echo)
        (stamps / "ablation.json").unlink(missing_ok=True)
        ablate(pool_dir, curation_dir, settings=ablation, echo=lambda line: _print(line, echo))
        shutil.copyfile(curation_dir / ABLATION_FILE, kept)
        dump_json(stamps / "ablation.json", ablation_settings)
        status = "ran"
    result = json.loads((curation_dir / ABLATION_FILE).read_text())
    write_report_or_warn(curation_dir)  # again, now with the ablation section
    _print(f"[4/5] ablation ({status}, {time.perf_counter() - t0:.0f}s):\n" + format_table(result), echo)
    summary["stages"]["ablation"] = {"status": status, "seconds": round(time.perf_counter() - t0, 1),
                                     "file": str(curation_dir / ABLATION_FILE)}
    summary["ablation"] = {name: {m: s["mean"] for m, s in stats.items()} for name, stats in result["summary"].items()}

    # -- 5. publish
    report = curation_dir / "report" / "report.html"
    folders = {"curated dataset": (curation_dir, f"{user}/shapes-curated"),
               "model": (model_dir, f"{user}/unifilter-quickstart-shapes")}
    if photos:
        folders["photo four-level set"] = (photos_dir, f"{user}/unifilter-photos-four-level")
    _print(f"[5/5] publish: look at the report first: {report}" if report.exists()
           else "[5/5] publish: the report could not be written (see the warning above)", echo)
    for name, (folder, repo) in folders.items():
        _print(f"      {name:<21} {folder}   unifilter-hf push {folder} {repo}", echo)
    _print(f"      {'shapes-world set':<21} {shapes_dir}   hf upload {user}/shapes-world-four-level {shapes_dir} "
           "--repo-type dataset", echo)
    summary["push"] = {name: f"unifilter-hf push {f} {r}" for name, (f, r) in folders.items()}
    summary["report"] = str(report) if report.exists() else None
    summary["total_seconds"] = round(time.perf_counter() - started, 1)
    dump_json(out / "demo_summary.json", summary)
    _print(f"done in {summary['total_seconds']:.0f}s; numbers in {out / 'demo_summary.json'}", echo)
    return summary


def format_confusion(matrix: Sequence[Sequence[int]]) -> str:
    """The confusion matrix as text (rows: true level, columns: predicted level).

    Example:
        >>> print(format_confusion([[2, 0], [1, 1]]))
              confusion (rows: true level, columns: predicted)      0    1
              true 0                                                2    0
              true 1                                                1    1
    """
    label = "confusion (rows: true level, columns: predicted)"
    lines = [f"      {label:<50}" + "".join(f"{k:>5}" for k in range(len(matrix)))]
    for k, row in enumerate(matrix):
        lines.append(f"      {'true ' + str(k):<50}" + "".join(f"{v:>5}" for v in row))
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _quiet_libraries() -> None:
    """Silence datasets' progress bars and transformers' info logs (the training bar is the trainer's own)."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
