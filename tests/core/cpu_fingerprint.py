"""What decides a CPU float result's last bits on a machine: the CPU model and the kernels torch picks for it.

Two machines with the same fingerprint compute the same bits for the same call on the same threads; across
fingerprints results agree to float rounding only (a few pixels of the README's GIF: docs/trajectory.gif.json).

    python tests/core/cpu_fingerprint.py    # prints this machine's, as JSON
"""

from __future__ import annotations

import json
from pathlib import Path


def cpu_fingerprint() -> dict:
    import torch

    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpu": model, "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch": torch.__version__.split("+")[0]}


if __name__ == "__main__":
    print(json.dumps(cpu_fingerprint(), indent=1))
