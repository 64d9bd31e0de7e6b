"""A cheap, deterministic identity of a scoring model, for `datasets` caching and curation manifests.

Weights are never hashed in full: a folder is identified by its configs and weight-file headers, a Hub id by
the commit of its cached snapshot, an in-memory model by its small tensors and a fixed sample of large ones.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import try_to_load_from_cache

_SAMPLED_VALUES = 64  # values read per large tensor when fingerprinting an in-memory model
_SMALL_TENSOR = 1 << 16  # tensors up to this size are hashed whole (heads, norms, biases)


def model_fingerprint(model: Any) -> str:
    """A cheap, deterministic identity of a model: never hashes the full weights.

    - a local folder: its `config.json` plus, per weights file, name, size, mtime and safetensors header;
    - a Hub id: the id and the commit of its locally cached snapshot, if any;
    - an in-memory model: its source identity plus every small tensor and a fixed sample of values of each
      large one (a change confined to unsampled positions of a large tensor is not seen: pass
      `fingerprint=` to the callables in that case).

    Example:
        >>> from unifilter_hf.tiny import tiny_model_and_processor
        >>> len(model_fingerprint(tiny_model_and_processor()[0]))
        64
    """
    digest = hashlib.sha256()
    model = getattr(model, "model", model)  # a QualityScorer: its model
    if isinstance(model, (str, os.PathLike)):
        digest.update(_source_identity(str(model)).encode())
        return digest.hexdigest()
    config = model.config
    digest.update(_source_identity(config.name_or_path or "").encode())
    digest.update(str(getattr(config, "_commit_hash", "")).encode())
    digest.update(config.to_json_string(use_diff=False).encode())
    with torch.no_grad():
        for name, tensor in itertools.chain(model.named_parameters(), model.named_buffers()):
            flat = tensor.detach().reshape(-1)
            if flat.numel() > _SMALL_TENSOR:
                index = torch.arange(_SAMPLED_VALUES, device=flat.device) * (flat.numel() - 1) // (_SAMPLED_VALUES - 1)
                flat = flat[index]
            digest.update(name.encode())
            digest.update(str(tuple(tensor.shape)).encode())
            digest.update(flat.float().cpu().numpy().tobytes())
    return digest.hexdigest()


def _source_identity(name_or_path: str) -> str:
    path = Path(name_or_path)
    if not path.is_dir():
        # The locally cached snapshot's commit, when there is one: a new upstream revision is a new identity.
        try:
            cached = try_to_load_from_cache(name_or_path, "config.json")
        except ValueError:  # not a valid repo id
            cached = None
        commit = Path(cached).parent.name if isinstance(cached, str) else "uncached"
        return f"hub:{name_or_path}@{commit}"
    parts = [f"dir:{path.resolve()}"]
    for file in sorted(path.iterdir()):
        if file.name == "config.json" or file.name.endswith("_config.json"):
            parts.append(file.read_text())
        elif file.suffix in (".safetensors", ".bin"):
            stat = file.stat()
            parts.append(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}")
            if file.suffix == ".safetensors":
                with open(file, "rb") as handle:  # the JSON header: tensor names, dtypes, shapes, offsets
                    size = int.from_bytes(handle.read(8), "little")
                    parts.append(handle.read(min(size, 1 << 24)).decode("utf-8", "replace"))
    return "\n".join(parts)


__all__ = ["model_fingerprint"]
