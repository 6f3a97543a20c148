"""A decoded image as the model input tensor."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def to_tensor(image: Image.Image, size: int, normalise: str = "tflite", flip: bool = False) -> torch.Tensor:
    """Resize (squash) to ``size`` x ``size`` and normalise as the backbone expects: (3, size, size)."""
    im = image.resize((size, size), Image.BILINEAR)
    if flip:
        im = im.transpose(Image.FLIP_LEFT_RIGHT)
    x = torch.from_numpy(np.asarray(im, dtype=np.float32)).permute(2, 0, 1) / 255.0
    if normalise == "tflite":
        return (x * 255.0 - 127.0) / 128.0
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    return (x - mean) / std
