"""How the scorer runs the model: its precision (:func:`resolve_dtype`) and opt-in compilation, the vision
tower's and the decoder's layers under `torch.compile`.

Regional compilation, as torch recommends for stacks of identical blocks: every SigLIP encoder layer, every
decoder layer and the projector get `Module.compile(dynamic=True)`. The layers of one stack share their code
and parameter shapes, so torch traces and compiles one graph per stack and reuses it for every layer: the
compile time of one layer, not of the whole model. Shapes are symbolic (`dynamic=True`): batch size, number of
images and sequence length vary without a new graph, so a job of any length mix compiles a bounded set of
graphs: per block kind (vision layer, decoder layer, projector), one graph for many rows and one for a single
row or image (torch specializes size 1), i.e. at most 6; :class:`CompiledForward` logs each new graph.

Where torch cannot compile (no C++ compiler for inductor on CPU, an unsupported Python, an op the compiler
rejects), scoring falls back to the eager model with one warning per process; scores are the same within
1e-4 either way (fp32).

Example:
    >>> from unifilter_hf.tiny import tiny_model_and_processor
    >>> model, _ = tiny_model_and_processor()
    >>> compile_for_scoring(model)
    True
    >>> remove_compilation(model)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)
_warned = False  # one fallback warning per process, however many scorers a job builds


def compiled_blocks(model: nn.Module) -> list[nn.Module]:
    """The modules that get compiled: the vision layers, the decoder layers and the projector.

    A tower or decoder without a `layers` list is compiled whole.
    """
    blocks: list[nn.Module] = []
    vision = model.vision_tower
    layers = getattr(getattr(vision, "encoder", None), "layers", None)
    blocks.extend(layers if layers is not None else [vision])
    decoder = model.language_model
    layers = getattr(decoder, "layers", None)
    blocks.extend(layers if layers is not None else [decoder])
    blocks.append(model.projector)
    return blocks


def compile_for_scoring(model: nn.Module) -> bool:
    """Compile `model`'s blocks in place (regional, dynamic shapes); False, with one warning, where torch cannot.

    Compilation itself happens on the first forward pass of each new graph; a failure there is caught by
    :class:`CompiledForward`, which falls back to eager.
    """
    if getattr(model, "_unifilter_compiled", False):
        return True
    try:
        for block in compiled_blocks(model):
            block.compile(dynamic=True)
    except Exception as err:  # noqa: BLE001 - e.g. "Dynamo is not supported on this Python"
        remove_compilation(model)
        warn_fallback(err)
        return False
    model._unifilter_compiled = True
    return True


def remove_compilation(model: nn.Module) -> None:
    """Undo :func:`compile_for_scoring`: the blocks run eagerly again."""
    for block in compiled_blocks(model):
        block._compiled_call_impl = None
    model._unifilter_compiled = False


def warn_fallback(err: BaseException) -> None:
    """The one warning of a process whose scorer asked for compilation and runs eagerly instead."""
    global _warned
    if not _warned:
        _warned = True
        first = (str(err).strip().splitlines() or [""])[0][:300]
        logger.warning("torch.compile is not available here (%s: %s); scoring runs eagerly (same scores, "
                       "uncompiled speed)", type(err).__name__, first)


def compiled_graphs() -> int:
    """Graphs torch has compiled in this process so far."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


class CompiledForward:
    """Calls a compiled model; logs every newly compiled graph; falls back to eager if compilation fails.

    A forward pass that raises under compilation is run again eagerly. If the eager pass succeeds, the
    compiler was at fault: one warning, the model's blocks are uncompiled and the job goes on eagerly. If
    it fails too, the rows are at fault: their error is raised as without compilation, and compilation
    stays on for the next batch.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.active = compile_for_scoring(model)

    def __call__(self, **inputs: Any):
        if not self.active:
            return self.model(**inputs)
        before = compiled_graphs()
        try:
            out = self.model(**inputs)
        except torch.OutOfMemoryError:
            raise
        except Exception as err:  # noqa: BLE001 - decided below: compiler or rows
            out = _eager(self.model, inputs)  # the rows' own error propagates from here
            remove_compilation(self.model)
            self.active = False
            warn_fallback(err)
            return out
        new = compiled_graphs() - before
        if new:
            shape = tuple(inputs["input_ids"].shape) if "input_ids" in inputs else ()
            logger.info("compiled %d new graph(s) for a micro-batch of shape %s (%d in this process)", new, shape,
                        compiled_graphs())
        return out


def _eager(model: nn.Module, inputs: dict) -> Any:
    with torch.compiler.set_stance("force_eager"):
        return model(**inputs)


def forward_fn(model: nn.Module, compile: bool) -> Callable[..., Any]:
    """The scorer's forward call: a :class:`CompiledForward`, or the model run eagerly (even where another
    scorer sharing it compiled its blocks)."""
    if compile:
        return CompiledForward(model)
    return lambda **inputs: _eager(model, inputs) if getattr(model, "_unifilter_compiled", False) else model(**inputs)


DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype | None:
    """A dtype setting as a `torch.dtype` (None and "auto": keep the model's); float16 only off the CPU.

    Example:
        >>> resolve_dtype("bf16", torch.device("cpu"))
        torch.bfloat16
    """
    if dtype is None or dtype == "auto":
        return None
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)} or auto")
        dtype = DTYPES[dtype]
    if dtype not in DTYPES.values():
        raise ValueError(f"dtype must be float32, bfloat16 or float16, got {dtype}")
    if dtype == torch.float16 and torch.device(device).type == "cpu":
        raise ValueError("float16 needs a GPU (CPUs lack fast float16 kernels); on CPU use bfloat16 or float32")
    return dtype


__all__ = [
    "DTYPES", "CompiledForward", "compile_for_scoring", "compiled_blocks", "compiled_graphs", "remove_compilation",
    "resolve_dtype",
]
