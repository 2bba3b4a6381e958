"""The trainers under torchrun with two CPU processes (gloo): both ranks finish with the same
weights (DDP averaged their gradients), only rank 0 wrote checkpoints, and FSDP (sharded weights)
trains to the same weights as DDP."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from facecap_lib.data.synth.batch import FaceSpec, render_to_files

WORKER = Path(__file__).parent / "workers" / "ddp_train.py"
STATISTICS = ("running_mean", "running_var", "num_batches_tracked")  # BatchNorm: per rank on CPU


def learned(weights: dict) -> dict:
    """Parameters only: without SyncBatchNorm (CPU) each rank keeps its own running statistics;
    the checkpoint has rank 0's (see ``distributed.wrap``)."""
    return {k: v for k, v in weights.items() if not k.endswith(STATISTICS)}


AU_SETS = [{1, 2}, {6, 12}, {4, 7}, {25, 26}]


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    specs = [
        FaceSpec({au: 4 for au in s}, identity=i, path=f"{i}.png") for i, s in enumerate(AU_SETS)
    ]
    render_to_files(specs, root, size=64, workers=1, progress=False)
    return root


def launch(stage: str, faces: Path, out: Path) -> list[dict]:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        str(WORKER), stage, str(faces), str(out),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1)]


@pytest.mark.parametrize("stage", ["stage2", "stage1"])
def test_two_process_run_agrees(stage, faces, tmp_path):
    ranks = launch(stage, faces, tmp_path)
    assert [r["world"] for r in ranks] == [2, 2]
    assert ranks[0]["history"] == ranks[1]["history"] and len(ranks[0]["history"]) == 3
    for name, weight in learned(ranks[0]["weights"]).items():
        assert torch.equal(weight, ranks[1]["weights"][name]), name
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint-2", "final"]
    assert not list(run.glob(".*.tmp"))


def test_fsdp_trains_like_ddp(faces, tmp_path):
    """FSDP shards every weight over the two ranks; the result must be DDP's, to rounding."""
    ddp = launch("stage2", faces, tmp_path / "ddp")[0]
    fsdp = launch("stage2-fsdp", faces, tmp_path / "fsdp")
    assert [h["loss"] for h in fsdp[0]["history"]] == pytest.approx(
        [h["loss"] for h in ddp["history"]], rel=1e-4
    )
    for name, weight in ddp["weights"].items():
        assert torch.allclose(fsdp[0]["weights"][name].float(), weight.float(), atol=1e-5), name
    for name, weight in learned(fsdp[0]["weights"]).items():
        assert torch.equal(weight, fsdp[1]["weights"][name]), name
    assert sorted(p.name for p in (tmp_path / "fsdp" / "run").iterdir()) == [
        "checkpoint-2",
        "final",
    ]
