"""Shared helpers of the benchmark scripts (not part of the package)."""
from __future__ import annotations

import os
import platform
import resource


def machine() -> str:
    import torch

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
            f"torch {torch.__version__} with {torch.get_num_threads()} threads, CUDA: {torch.cuda.is_available()}")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """Current resident memory (Linux), else the peak."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return peak_rss_mb()


def load_runtime(device: str = "auto"):
    """The bundled model when it loads; else the real lite2 architecture with random weights; else tiny."""
    from sfe_desktop.errors import SFEError
    from sfe_desktop.settings import pick_device
    from sfe_desktop.model.runtime import SFERuntime, tiny_runtime

    try:
        return SFERuntime.load(None, device), "bundled checkpoint"
    except SFEError as exc:
        print(f"note: default checkpoint unavailable ({exc})")
    try:
        rt = tiny_runtime(0, device=str(pick_device(device)), image_backbone="lite2", image_size=260, dim=256,
                          n_concepts=500)
        return rt, "random-init lite2 image tower at 260 px, dim 256 (same compute as the default model)"
    except SFEError as exc:
        print(f"note: lite2 architecture unavailable ({exc}); falling back to tiny_runtime")
    return tiny_runtime(0, device=str(pick_device(device))), "tiny_runtime (tiny backbones: ratio not representative)"


def add_allocator_flag(parser) -> None:
    parser.add_argument("--no-malloc-tuning", action="store_true",
                        help="leave glibc's allocator at its defaults (the app tunes it at start)")


def setup_allocator(args) -> None:
    """Tune the allocator as the app's entry points do, unless ``--no-malloc-tuning``; say which."""
    from sfe_desktop.memory import tune_allocator

    print("allocator tuning (as the app does at start):",
          "off (--no-malloc-tuning)" if args.no_malloc_tuning else tune_allocator())
