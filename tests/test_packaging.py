"""The wheel carries every non-Python file the package reads at run time (a `pip install` without the repo)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_ships_card_templates_report_template_and_metric(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(REPO)], check=True, timeout=600, capture_output=True)
    (wheel,) = tmp_path.glob("unifilter_hf-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {f"unifilter_hf/model_cards/{p.name}" for p in (REPO / "model_cards").glob("*.md")}
    assert len(templates) == 4 and templates <= names, templates - names
    assert "unifilter_hf/report/report.html.jinja" in names
    assert "unifilter_hf/metrics/unifilter_quality/unifilter_quality.py" in names
    # the modules that read the templates look for them inside the package, where the wheel puts them
    from unifilter_hf.publishing.dataset_cards import CURATED_TEMPLATE
    from unifilter_hf.training.card import TEMPLATE

    for path in (CURATED_TEMPLATE, TEMPLATE):
        assert Path(path).parent == REPO / "unifilter_hf" / "model_cards" and path.is_file()
