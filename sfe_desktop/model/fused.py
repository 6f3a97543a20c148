"""Fast CPU copies of the image tower for inference: its frozen lower part, its upper part and the label
bridge's pretrained top, each as plain float modules with every batch norm folded into its convolution (exact in
eval mode), TensorFlow "SAME" padding made explicit, channels-last memory. The same output as the modules they copy
up to float rounding (about 1e-4 on outputs of size 50); about half their time in PyTorch on 2 cores.

Where ONNX Runtime is installed (the optional extra ``fast``), batches of two or more photos run these copies
through it (:class:`OrtRunner`): exported in memory on the first such batch (about 0.4 s for Lite2's lower part),
the same output up to float rounding, and about 2.5x faster again on an AVX2 CPU (NCHWc convolutions with the
ReLU6 and the skip-add fused). ``SFE_ORT=0`` keeps them in PyTorch, ``SFE_FUSED=0`` runs the modules themselves.

Post-training int8 quantisation of the lower part (PyTorch FX, x86/fbgemm) was tried and is not used: on an
AVX2 CPU without VNNI it was no faster than the fused float copy, and its calibration had accuracy problems
not solved (see docs/int8.md).
"""
from __future__ import annotations

import io
import logging
import os
import threading
import warnings

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

ENV_SWITCH = "SFE_FUSED"  # "0": run the modules themselves (for comparisons)
ORT_SWITCH = "SFE_ORT"  # "0": run the fused copies in PyTorch even where ONNX Runtime is installed
CACHE = "_fast_copies"  # the owner's __dict__ key of its copies: outside the module tree, not in the state dict


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


def _frozen(parts: list[nn.Module]) -> nn.Module:
    net = nn.Sequential(*parts).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net.to(memory_format=torch.channels_last)


def plain_lower(backbone) -> nn.Module:
    """The frozen lower part of ``backbone`` (an :class:`~sfe_desktop.model.backbones.ImageBackbone`) as one
    plain float module, batch norms folded, in eval mode and channels-last; same output as ``backbone.lower``
    up to float rounding. Raises :class:`Unsupported` for a layer it does not know."""
    parts = [_plain(backbone.stem)] + [_plain(b) for b in backbone.blocks[: backbone.split]]
    if backbone.n_upper_blocks == 0:
        parts.append(_plain(backbone.head))
    return _frozen(parts)


def plain_top(modules) -> nn.Module:
    """Blocks and a head (``modules``, in order: the upper part of an image tower, the label bridge's pretrained
    top) as one plain float module, as :func:`plain_lower` makes it."""
    return _frozen([_plain(m) for m in modules])


def _switched_on(name: str) -> bool:
    return os.environ.get(name, "1").strip().lower() not in ("0", "false", "no", "off")


def wanted() -> bool:
    """Whether the fused copies may be used (``SFE_FUSED=0`` turns them off)."""
    return _switched_on(ENV_SWITCH)


def run(owner: nn.Module, part: str, make, x: torch.Tensor, modules):
    """``x`` through the fast copy of ``owner``'s ``part`` (``make()`` builds it as a plain module, on first use
    after the weights or the mode last changed) when this is inference on the CPU, else through ``modules``
    (a callable: the modules themselves). A part that cannot be copied (:class:`Unsupported`, said once in the
    log) or ``SFE_FUSED=0`` runs ``modules`` too."""
    if x.device.type != "cpu" or owner.training or torch.is_grad_enabled():
        return modules(x)
    copies = owner.__dict__.setdefault(CACHE, {})
    if part not in copies:
        try:
            copies[part] = OrtRunner(make()) if wanted() else None
        except Unsupported as exc:
            log.info("%s %s: the fused CPU path is not available (%s); using its own modules",
                     type(owner).__name__, part, exc)
            copies[part] = None
    runner = copies[part]
    return modules(x) if runner is None else runner(x)


def forget(owner: nn.Module) -> None:
    """Drop ``owner``'s copies (its weights or its mode changed): made again when next needed."""
    owner.__dict__.pop(CACHE, None)


class OrtRunner:
    """A fused copy ``net`` as a callable that runs batches of two or more float inputs through ONNX Runtime
    (exported in memory on the first such batch, for the per-sample shape of that batch; one session per PyTorch
    thread count) and everything else (one input, another shape or type) through ``net`` itself. Where ONNX
    Runtime is missing, the export fails or ``SFE_ORT=0``, ``net`` serves every batch (said once in the log)."""

    def __init__(self, net: nn.Module):
        self.net = net
        self.shape: tuple[int, ...] | None = None  # per-sample input shape of the exported graph
        self._model: bytes | None = None  # the exported graph; b"" once the export was refused
        self._sessions: dict[int, object] = {}
        self._lock = threading.Lock()

    def _session(self, shape: tuple[int, ...]):
        threads = torch.get_num_threads()
        with self._lock:
            if self._model is None:
                self.shape, self._model = shape, self._export(shape)
            if not self._model or shape != self.shape:
                return None
            if threads not in self._sessions:
                import onnxruntime as ort

                opts = ort.SessionOptions()
                opts.intra_op_num_threads = threads  # as many as PyTorch would use for the same work
                opts.inter_op_num_threads = 1
                # idle threads sleep instead of spinning: the decode threads of an index run share the cores
                opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
                opts.log_severity_level = 3
                self._sessions[threads] = ort.InferenceSession(self._model, opts,
                                                               providers=["CPUExecutionProvider"])
            return self._sessions[threads]

    def _export(self, shape: tuple[int, ...]) -> bytes:
        if not _switched_on(ORT_SWITCH):
            return b""
        try:
            import onnxruntime  # noqa: F401  (the optional extra "fast")

            buf = io.BytesIO()
            with warnings.catch_warnings():  # the TorchScript exporter warns that it is deprecated
                warnings.simplefilter("ignore")
                torch.onnx.export(self.net, (torch.zeros(1, *shape),), buf, input_names=["x"], output_names=["y"],
                                  dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=17,
                                  dynamo=False)
            return buf.getvalue()
        except Exception as exc:  # ImportError (not installed) or an export the installed versions refuse
            log.info("the image tower runs in PyTorch (ONNX Runtime path not available: %s)",
                     str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return b""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if len(x) >= 2 and x.dtype == torch.float32:
            session = self._session(tuple(x.shape[1:]))
            if session is not None:
                return torch.from_numpy(session.run(None, {"x": np.ascontiguousarray(x.numpy())})[0])
        return self.net(x.contiguous(memory_format=torch.channels_last)).contiguous()
