"""Test kit: real photographs from installed packages, a tiny offline tokenizer, tiny model configs.

Nothing here touches the network: the photographs ship inside scikit-image and scikit-learn wheels, and the
tokenizer is trained in memory on a small corpus.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image

# name -> loader of an RGB uint8 array; all real photographs shipped in PyPI wheels.
_SKIMAGE_RGB = ["astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field"]
_SKIMAGE_GRAY = ["camera", "coins", "moon", "page", "horse", "clock", "brick", "grass", "gravel", "cell"]


@functools.cache
def _photo_array(name: str) -> np.ndarray:
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    from skimage import data

    return getattr(data, name)()


def photo(name: str, size: int | None = None) -> Image.Image:
    """A real photograph as a PIL image (RGB for color photos, "L" for grayscale ones).

    ``size`` downsizes the longer side (keeps tests fast when pixels do not matter).
    """
    img = Image.fromarray(_photo_array(name))
    if size is not None:
        img.thumbnail((size, size))
    return img


PHOTO_NAMES = ["astronaut", "chelsea", "coffee", "rocket", "china", "flower"]


from unifilter_hf.tiny import (  # noqa: E402,F401  (re-exported for tests)
    IMAGE_SIZE,
    NUM_IMAGE_TOKENS,
    tiny_config,
    tiny_model_and_processor,
    tiny_processor,
    tiny_tokenizer,
)
