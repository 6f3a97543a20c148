"""The image tower's frozen lower part as plain float modules for CPU inference: every batch norm folded into its
convolution (exact in eval mode), TensorFlow "SAME" padding made explicit, channels-last memory. On 2 cores it runs
in about half the time of the module it copies, with the same output up to float rounding (about 1e-4 on outputs
of size 50).

Post-training int8 quantisation of this copy (PyTorch FX, x86/fbgemm) was tried and is not used: on this
AVX2 CPU without VNNI it was no faster than the fused float copy, and its calibration had accuracy problems
not solved (see docs/int8.md).
"""
from __future__ import annotations

import logging
import os

import torch
from torch import nn

log = logging.getLogger(__name__)

ENV_SWITCH = "SFE_FUSED"  # "0": run the backbone's own modules (for comparisons)


class Unsupported(RuntimeError):
    """A layer this module cannot copy (the message says which); the backbone's own modules stay in use."""


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d | None) -> nn.Module:
    """``conv`` (an efficientnet "static same" convolution or a plain one) followed by ``bn`` as one plain
    convolution, preceded by its padding when that is asymmetric."""
    plain = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      conv.dilation, conv.groups, bias=True).eval()
    with torch.no_grad():
        plain.weight.copy_(conv.weight)
        if conv.bias is not None:
            plain.bias.copy_(conv.bias)
        else:
            plain.bias.zero_()
    if bn is not None:
        was = bn.training
        plain = torch.nn.utils.fusion.fuse_conv_bn_eval(plain, bn.eval())
        bn.train(was)
    pad = getattr(conv, "static_padding", None)
    if isinstance(pad, nn.ZeroPad2d):
        left, right, top, bottom = pad.padding
        if left == right and top == bottom:
            plain.padding = (top, left)
        else:
            return nn.Sequential(nn.ZeroPad2d((left, right, top, bottom)), plain)
    elif pad is not None and not isinstance(pad, nn.Identity) and type(pad).__name__ != "Identity":
        raise Unsupported(f"padding module {type(pad).__name__}")
    return plain


class _MBConv(nn.Module):
    """An EfficientNet-Lite MBConv block with its batch norms folded: expand, depthwise, project, skip."""

    def __init__(self, block: nn.Module):
        super().__init__()
        args = block._block_args
        if getattr(block, "has_se", False):
            raise Unsupported("squeeze-and-excitation blocks")
        if not isinstance(block._swish, nn.ReLU6):
            raise Unsupported(f"activation {type(block._swish).__name__} (EfficientNet-Lite uses ReLU6)")
        self.expand = _fold(block._expand_conv, block._bn0) if args.expand_ratio != 1 else None
        self.act1 = nn.ReLU6()
        self.depthwise = _fold(block._depthwise_conv, block._bn1)
        self.act2 = nn.ReLU6()
        self.project = _fold(block._project_conv, block._bn2)
        self.skip = bool(block.id_skip and args.stride == 1 and args.input_filters == args.output_filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act1(self.expand(x)) if self.expand is not None else x
        h = self.project(self.act2(self.depthwise(h)))
        return h + x if self.skip else h


def _plain(module: nn.Module) -> nn.Module:
    """A plain eval-mode copy of one part of a backbone (stem, block, head)."""
    if hasattr(module, "_block_args"):
        return _MBConv(module)
    if isinstance(module, nn.Sequential):
        parts: list[nn.Module] = []
        items = list(module)
        i = 0
        while i < len(items):
            m = items[i]
            nxt = items[i + 1] if i + 1 < len(items) else None
            if isinstance(m, nn.Conv2d):
                bn = nxt if isinstance(nxt, nn.BatchNorm2d) else None
                parts.append(_fold(m, bn))
                i += 2 if bn is not None else 1
                continue
            if isinstance(m, (nn.ReLU, nn.ReLU6)):
                parts.append(type(m)())
            elif isinstance(m, nn.Sequential):
                parts.append(_plain(m))
            else:
                raise Unsupported(f"layer {type(m).__name__}")
            i += 1
        return nn.Sequential(*parts)
    raise Unsupported(f"layer {type(module).__name__}")


def plain_lower(backbone) -> nn.Module:
    """The frozen lower part of ``backbone`` (an :class:`~sfe_desktop.model.backbones.ImageBackbone`) as one
    plain float module, batch norms folded, in eval mode and channels-last; same output as ``backbone.lower``
    up to float rounding. Raises :class:`Unsupported` for a layer it does not know."""
    parts = [_plain(backbone.stem)] + [_plain(b) for b in backbone.blocks[: backbone.split]]
    if backbone.n_upper_blocks == 0:
        parts.append(_plain(backbone.head))
    net = nn.Sequential(*parts).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net.to(memory_format=torch.channels_last)


def wanted() -> bool:
    """Whether the fused copy may be used (``SFE_FUSED=0`` turns it off)."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")
