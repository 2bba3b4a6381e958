"""Run by tests/test_distributed.py under ``torchrun --nproc-per-node 2`` (gloo, CPU).

Rank 1 arrives late, after the main process has written the artifact: the race that once hung
``facecap run`` under torchrun (a rank that saw the file skipped the barrier and entered the next
collective while the main process still waited in the barrier). With
``distributed.write_once`` both ranks reach the barrier, then an all-reduce, and exit.
"""

import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository

from facecap_lib.training import distributed  # noqa: E402


def main(out: Path) -> None:
    distributed.init()
    artifact = out / "artifact.txt"
    if distributed.rank() == 1:
        while not artifact.exists():  # late: the main process has written it
            time.sleep(0.01)
    distributed.write_once(artifact, lambda: artifact.write_text("written once"))
    total = torch.ones(1)
    dist.all_reduce(total)  # the next collective
    seen = distributed.main_sees(distributed.rank() == 0)  # rank 0's True on both
    (out / f"rank{distributed.rank()}.txt").write_text(f"{int(total.item())} {seen}")
    distributed.barrier()  # both done before either tears the group down
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
