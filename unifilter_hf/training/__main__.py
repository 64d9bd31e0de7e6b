"""``python -m unifilter_hf.training CONFIG [--key value ...]``, e.g. under ``accelerate launch -m``."""

import sys

from ..cli import run_command
from .cli import main

if __name__ == "__main__":
    sys.exit(run_command("train", main))
