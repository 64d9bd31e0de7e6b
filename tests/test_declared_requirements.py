"""Every third-party package the code imports is declared in setup.cfg (install_requires or an extra)."""

import ast
import configparser
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Import name -> distribution name, where they differ.
DISTRIBUTION = {"PIL": "pillow", "skimage": "scikit-image", "sklearn": "scikit-learn", "yaml": "pyyaml",
                "huggingface_hub": "huggingface-hub"}


def _imported_packages() -> set[str]:
    names = set()
    for path in (ROOT / "unifilter_hf").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != "unifilter_hf"}


def _declared() -> set[str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = cfg["options"]["install_requires"].splitlines()
    lines += [line for extra in cfg["options.extras_require"].values() for line in extra.splitlines()]
    return {re.split(r"[<>=!\[; ]", line.strip())[0].lower() for line in lines if line.strip()
            and not line.strip().startswith("#")}


def test_every_import_is_declared():
    imported = {DISTRIBUTION.get(n, n).lower().replace("_", "-") for n in _imported_packages()}
    assert {"pyyaml", "pyarrow", "torch"} <= imported  # the scan sees real imports
    assert sorted(imported - _declared()) == []
