"""Run by tests/test_distributed.py under ``torchrun --nproc-per-node 2`` (gloo, CPU).

Trains a few stage-2 or stage-1 steps of the tiny preset with the project's trainers, then saves
this rank's weights and history, so the test can check that both ranks agree.
"""

import sys
from pathlib import Path

import torch

from facecap_lib.captions.rules import au_caption
from facecap_lib.models.tokenizer import train_tokenizer
from facecap_lib.training import distributed
from facecap_lib.training.config import TrainConfig
from facecap_lib.training.loop import Pair, train_captioner
from facecap_lib.training.stage1 import train_qformer

AU_SETS = [{1, 2}, {6, 12}, {4, 7}, {25, 26}]


def main(stage: str, faces: Path, out: Path) -> None:
    pairs = [Pair(str(faces / f"{i}.png"), au_caption(s)) for i, s in enumerate(AU_SETS)]
    tokenizer = train_tokenizer([p.caption for p in pairs], vocab_size=300, min_frequency=1)
    lines = []
    if stage.startswith("stage2"):
        config = TrainConfig(
            max_steps=3, batch_size=4, warmup_steps=1, lr=1e-3, augment=False, save_every=2,
            parallel="fsdp" if "fsdp" in stage else "ddp", log_every=1,
            fused_optimizer="fsdp" not in stage,  # as on GPUs: losses read late (LossBook)
        )  # fmt: skip
        if stage.endswith("resume"):  # killed after the step-2 checkpoint, then run again
            train_captioner(pairs, out / "run", config, tokenizer=tokenizer, log=None, stop_after=2)
        result = train_captioner(pairs, out / "run", config, tokenizer=tokenizer, log=lines.append)
        if distributed.is_main():  # rank 0 logs, at every step up to the last
            assert lines and lines[-1].startswith("step 3/3 loss"), lines
        else:
            assert not lines, lines
    else:
        config = TrainConfig.stage1(
            max_steps=3, batch_size=4, warmup_steps=1, lr=1e-3, augment=False, save_every=2
        )
        result = train_qformer(pairs, out / "run", config, tokenizer=tokenizer, log=None)
    torch.save(
        {
            "world": distributed.world(),
            "weights": {k: v.detach().clone() for k, v in result.model.state_dict().items()},
            "history": result.history,
        },
        out / f"rank{distributed.rank()}.pt",
    )


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
