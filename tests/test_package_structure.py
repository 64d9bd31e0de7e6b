"""The package's shape: layers that only import downwards, no import cycles, the model trio kept clean.

The layers, lowest first (docs/architecture.md draws them). A module imports only from its own layer or a
lower one; the root ``unifilter_hf/__init__`` (registration and the public names) is the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "unifilter_hf"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Package modules imported by a file (relative and absolute), at any depth of the file."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())  # TYPE_CHECKING imports count too: a circle of concepts
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            candidates = [target] + [f"{target}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found.update(c for c in candidates if c.split(".")[0] == "unifilter_hf")
    return found


# (layer, module prefixes). A prefix names a module or a subpackage (and everything in it).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("model", ("configuration_unifilter", "modeling_unifilter", "processing_unifilter", "sample",
               "image_conversion", "levels", "errors", "quality_losses", "version", "official.layout")),
    ("inputs", ("image_loading", "local_files", "safe_fetch", "document_slots", "row_layouts", "quality_metrics",
                "calibration", "metrics")),
    ("sources", ("sources",)),
    ("scoring", (
        "scoring", "micro_batches", "host_threads", "compilation", "scoring_settings", "pipeline_unifilter",
        "filtering", "batch_formats", "fingerprint", "tiny",
    )),
    ("jobs", ("curation", "training", "synthesis", "datasets_builder", "official", "ablation")),
    ("publishing", ("publishing", "report")),
    ("entry", ("cli", "demo", "*.cli", "*.__main__", "")),
]


def layer_of(module: str) -> int:
    """The rank of a module's layer: the longest matching prefix wins; ``*.cli`` marks any package's command."""
    name = module.removeprefix("unifilter_hf").removeprefix(".")
    best, rank = -1, None
    for k, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if prefix.startswith("*."):
                hit = name.endswith(prefix[1:]) or name == prefix[2:]
                length = 1000 if hit else -1  # a command module is an entry point wherever it lives
            else:
                hit = name == prefix or name.startswith(prefix + ".") or prefix == ""
                length = len(prefix) if hit else -1
            if hit and length > best:
                best, rank = length, k
    assert rank is not None, module
    return rank


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        # An import of `pkg.mod` also runs `pkg/__init__`; only edges to real modules count.
        graph[name] = {target for target in _imports(path) if target in files and target != name}
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        for nxt in graph.get(node, ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_no_import_cycle_between_modules():
    graph = _graph()
    assert len(graph) > 20  # the walk really found the package
    # Package __init__ files re-export their children; a child importing a sibling is not a cycle through them.
    graph = {n: {t for t in ts if not graph.get(t) or not _is_parent_package(t, n)} for n, ts in graph.items()}
    assert _find_cycle(graph) is None, " -> ".join(_find_cycle(graph))


def _is_parent_package(candidate: str, module: str) -> bool:
    init = PACKAGE.parent / Path(*candidate.split(".")) / "__init__.py"
    return module.startswith(candidate + ".") and init.is_file()


def _upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for module, targets in graph.items()
        for target in targets
        if layer_of(target) > layer_of(module) and (target == "unifilter_hf" or not _is_parent_package(target, module))
    )


def test_every_module_imports_only_its_own_layer_or_lower():
    upward = _upward_imports(_graph())
    assert not upward, "\n".join(upward)


def test_layer_check_finds_an_upward_import():
    graph = _graph()
    graph["unifilter_hf.scoring"] = graph["unifilter_hf.scoring"] | {"unifilter_hf.curation.job"}
    assert _upward_imports(graph) == [
        "unifilter_hf.scoring (scoring) imports unifilter_hf.curation.job (jobs)"
    ]
    assert layer_of("unifilter_hf.curation.cli") == layer_of("unifilter_hf.cli") == len(LAYERS) - 1
    assert layer_of("unifilter_hf.official.layout") == 0 < layer_of("unifilter_hf.official.conversion")


def test_cycle_finder_finds_a_cycle():
    graph = _graph()  # a deliberately added circle in the real graph
    graph["unifilter_hf.image_loading"] = graph["unifilter_hf.image_loading"] | {"unifilter_hf.row_layouts"}
    assert {"unifilter_hf.image_loading", "unifilter_hf.row_layouts"} <= set(_find_cycle(graph) or [])
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_native_trio_never_imports_the_official_format_or_row_readers():
    graph = _graph()
    for trio in ("modeling_unifilter", "processing_unifilter", "configuration_unifilter"):
        reached = _reachable(graph, f"unifilter_hf.{trio}")
        assert not any(m.startswith("unifilter_hf.official") for m in reached), (trio, reached)
        assert not reached & {"unifilter_hf.row_layouts", "unifilter_hf.image_loading"}, (trio, reached)
    # A leaf but for the error base, itself a leaf.
    assert _reachable(graph, "unifilter_hf.official.layout") == {"unifilter_hf.errors"}


def test_modules_stay_small():
    # One concept per file; the exceptions are listed with the reason they read best whole.
    whole = {}
    sizes = {p.relative_to(PACKAGE).as_posix(): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    too_long = {name: n for name, n in sizes.items() if n > 400 and name not in whole}
    assert not too_long


def test_every_package_import_names_a_module_that_exists():
    # Lazy imports inside functions are not run by most tests: a renamed module must not hide there.
    modules = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    missing = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("unifilter_hf")):
                target = _source_module(node, path)
                if target not in modules:
                    missing.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {target}")
    assert not missing


def _source_module(node: ast.ImportFrom, path: Path) -> str:
    """The module an ImportFrom reads from (``from .x import y`` -> ``unifilter_hf.<pkg>.x``)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    if not node.level:
        return node.module
    base = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))
