"""The Ray Data engine: shards are items of a Ray dataset, scored by an actor pool of the same scorer.

Each actor loads :class:`~unifilter_hf.scoring.QualityScorer` once and runs
:func:`~unifilter_hf.curation.engine_local.score_shard` on the shards it receives, writing the very same
sidecar files as the local engine (same windows, same batches), so a job can be started on one engine and
finished on the other. Rows move inside the actors (streamed from the source, never through Ray's object
store); Ray schedules whole shards, which is the unit of resume anyway. Actors use the driver's torch
thread count (or ``threads``): CPU sums are ordered by it, and equal sidecars need equal sums.

Example:
    >>> run_ray  # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np

from ..sources import Shard
from .manifest import Layout
from .settings import CurateConfig, CurationError


class ShardScorer:
    """A Ray Data actor: ``__call__`` scores every shard of its batch and returns row counts."""

    def __init__(self, model: str, output: str, settings: dict):
        import torch

        torch.set_num_threads(settings["threads"])  # the driver's count: CPU results depend on it

        self.scorer = settings["scoring"].build_scorer(model)  # the same ScoringSettings as the local engine
        self.layout = Layout(output)
        self.settings = settings

    def __call__(self, batch: dict) -> dict:
        from .engine_local import score_shard

        rows = []
        for payload in batch["shard"]:
            shard = Shard(**json.loads(payload))
            result = score_shard(self.scorer, shard, self.layout, columns=self.settings["scoring"].columns,
                                 window=self.settings["window"])
            rows.append(result.rows)
        return {"shard": batch["shard"], "rows": np.asarray(rows, dtype=np.int64)}


def _threads(config: CurateConfig) -> int:
    import torch

    return config.threads or torch.get_num_threads()


def run_ray(config: CurateConfig, model: str, shards: list[Shard], layout: Layout, progress) -> int:
    """Score ``shards`` on a Ray cluster (``config.ray_address``, else a local one); returns rows scored."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise CurationError("--engine ray needs Ray: pip install 'unifilter-hf[ray]'") from None
    if any(s.dataset is not None for s in shards):
        raise CurationError("--engine ray needs a path or Hub id source, not an in-memory dataset")
    if not ray.is_initialized():
        ray.init(address=config.ray_address, ignore_reinit_error=True, log_to_driver=not config.quiet)
    device = config.scoring.device or ("cuda" if config.gpus_per_actor else "cpu")
    settings = {"scoring": config.scoring.replace(device=device), "window": config.window_rows,
                "threads": _threads(config)}
    payloads = [json.dumps({k: v for k, v in asdict(s).items() if k != "dataset"}) for s in shards]
    ds = ray.data.from_items([{"shard": p} for p in payloads], override_num_blocks=max(1, len(payloads)))
    scored = ds.map_batches(
        ShardScorer,
        batch_size=1,
        concurrency=config.num_actors,
        num_gpus=config.gpus_per_actor or None,
        fn_constructor_kwargs={"model": model, "output": str(layout.root.resolve()), "settings": settings},
    )
    total = 0
    for batch in scored.iter_batches(batch_size=1):
        n = int(np.sum(batch["rows"]))
        total += n
        progress.update(n)
    return total
