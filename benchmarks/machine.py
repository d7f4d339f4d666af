"""The machine a benchmark ran on, for reporting figures with it (shared by the benchmark scripts)."""

from __future__ import annotations

import os
import platform

from CardiacAI.platform_info import cpu_model


def machine_info() -> dict:
    """CPU model, cores available to this process, GPU (if torch sees one) and library versions."""
    info = {
        "cpu": cpu_model(),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }
    try:
        import numpy
        import scipy

        info.update(numpy=numpy.__version__, scipy=scipy.__version__)
    except ImportError:
        pass
    try:
        import torch

        info.update(torch=torch.__version__,
                    gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")
    except ImportError:
        pass
    return info


def machine_line() -> str:
    """One line for a benchmark's printout."""
    i = machine_info()
    return (f"{i['cpu']}, {i['cores_available']} cores, GPU {i.get('gpu', 'n/a')}, torch {i.get('torch', 'n/a')}, "
            f"Python {i['python']}")
