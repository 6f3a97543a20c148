"""A decoded image as the model input tensor."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_STD = np.array([0.229, 0.224, 0.225], np.float32)


def to_tensor(image: Image.Image, size: int, normalise: str = "tflite", flip: bool = False) -> torch.Tensor:
    """Resize (squash) to ``size`` x ``size`` and normalise as the backbone expects: (3, size, size).

    The arithmetic is NumPy's, not torch's: this runs in the decode threads, where every small torch operation
    woke an OpenMP team of its own (about 30 ms of CPU per photo on 2 busy cores, for 1 ms of work). The
    operations and their order are those of the torch version, so the result is the same to the bit."""
    im = image.resize((size, size), Image.BILINEAR)
    if flip:
        im = im.transpose(Image.FLIP_LEFT_RIGHT)
    x = np.asarray(im, dtype=np.float32) / np.float32(255.0)
    if normalise == "tflite":
        x = (x * np.float32(255.0) - np.float32(127.0)) / np.float32(128.0)
    else:
        x = (x - _MEAN) / _STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))
