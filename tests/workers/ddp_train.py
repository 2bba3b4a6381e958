"""Run by tests/test_distributed.py under ``torchrun --nproc-per-node 2`` (gloo, CPU).

Trains a few steps of one task of the one loop (tests/training_tasks.py) with DDP or FSDP, then
saves this rank's weights (and those it started from), history and log lines, so the test can check that both ranks agree. The
DDP run is killed after its step-2 checkpoint (``stop_after``) and resumed, as a crash would.
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: tests.*

from facecap_lib.models.tokenizer import train_tokenizer  # noqa: E402
from facecap_lib.training import distributed  # noqa: E402
from facecap_lib.training.data import Pair  # noqa: E402
from facecap_lib.training.fit import fit  # noqa: E402
from tests.training_tasks import AU_SETS, make, small_fit, start_weights  # noqa: E402


def main(name: str, strategy: str, faces: Path, out: Path) -> None:
    from facecap_lib.captions.rules import au_caption

    pairs = [Pair(str(faces / f"{i}.png"), au_caption(s)) for i, s in enumerate(AU_SETS[:4])]
    tokenizer = train_tokenizer([p.caption for p in pairs], vocab_size=300, min_frequency=1)
    config = small_fit(
        max_steps=3, batch_size=4, save_every=2, log_every=1, parallel=strategy,
        fused_optimizer=strategy == "ddp",  # as on GPUs: losses read late (LossBook)
    )  # fmt: skip
    lines = []
    if strategy == "ddp":  # killed after the step-2 checkpoint, then run again
        fit(make(name, pairs, tokenizer), out / "run", config, log=None, stop_after=2)
    result = fit(make(name, pairs, tokenizer), out / "run", config, log=lines.append)
    start = start_weights(make(name, pairs, tokenizer), config)
    torch.save(
        {
            "world": distributed.world(),
            "start": start,
            "weights": {k: v.detach().clone() for k, v in result.model.state_dict().items()},
            "history": result.history,
            "lines": lines,
        },
        out / f"rank{distributed.rank()}.pt",
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
