"""Every task of the one loop under torchrun with two CPU processes (gloo): both ranks finish with
the same weights (DDP averaged their gradients), a DDP run killed after a checkpoint resumes, only
rank 0 writes checkpoints and logs, and FSDP (sharded weights) trains to DDP's weights."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.training_tasks import AU_SETS, TASKS, assert_same_updates, render

WORKER = Path(__file__).parent / "workers" / "ddp_train.py"


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    render(root, AU_SETS[:4])
    return root


def launch(name: str, strategy: str, faces: Path, out: Path) -> list[dict]:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        str(WORKER), name, strategy, str(faces), str(out),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1)]


def check_ranks_agree(ranks: list[dict], run: Path) -> None:
    assert [r["world"] for r in ranks] == [2, 2]
    assert ranks[0]["history"] == ranks[1]["history"] and len(ranks[0]["history"]) == 3
    for key, weight in ranks[0]["weights"].items():  # BatchNorm's statistics too (global ones)
        assert torch.equal(weight, ranks[1]["weights"][key]), key
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint-2", "final"]
    assert not list(run.glob(".*.tmp"))
    assert ranks[0]["lines"] and ranks[0]["lines"][-1].split(" loss")[0].endswith("step 3/3")
    assert not ranks[1]["lines"]  # rank 0 logs


@pytest.mark.parametrize("name", TASKS)
def test_ddp_resumes_and_fsdp_trains_like_it(name, faces, tmp_path):
    ddp = launch(name, "ddp", faces, tmp_path / "ddp")
    check_ranks_agree(ddp, tmp_path / "ddp" / "run")
    assert any("resumed from checkpoint-2 (step 2)" in line for line in ddp[0]["lines"])
    fsdp = launch(name, "fsdp", faces, tmp_path / "fsdp")
    check_ranks_agree(fsdp, tmp_path / "fsdp" / "run")
    assert [h["loss"] for h in fsdp[0]["history"]] == pytest.approx(
        [h["loss"] for h in ddp[0]["history"]], rel=1e-4
    )
    # the same moves, up to the order of their sums: with oneDNN's AVX2 kernels
    # (ONEDNN_MAX_CPU_ISA=AVX2) the conv stem's differ by up to 0.26% of their size, 8.8e-5 in an
    # element after three steps of 1e-3; with AVX-512 or SSE4.1 by 1.5e-5 (2026-12-07)
    assert_same_updates(fsdp[0]["weights"], ddp[0]["weights"], fsdp[0]["start"], rel=1e-2)


def test_moves_that_differ_are_told_apart():
    start = {"w": torch.zeros(100), "frozen": torch.ones(3), "steps": torch.tensor(3)}
    moved = {"w": torch.linspace(-1, 1, 100), "frozen": torch.ones(3), "steps": torch.tensor(3)}
    rounded = {**moved, "w": moved["w"] * (1 + 1e-3)}
    assert_same_updates(rounded, moved, start, rel=1e-2)
    with pytest.raises(AssertionError, match="w: moves differ"):
        assert_same_updates({**moved, "w": moved["w"] * 1.05}, moved, start, rel=1e-2)
    with pytest.raises(AssertionError, match="frozen: left as it was"):
        assert_same_updates({**moved, "frozen": torch.full((3,), 1.01)}, moved, start, rel=1e-2)


def test_a_late_rank_still_meets_the_writer_at_the_barrier(tmp_path):
    """``write_once``: a rank that finds the artifact already written still joins the barrier,
    so the next collective lines up instead of hanging; ``main_sees`` gives rank 0's decision."""
    worker = Path(__file__).parent / "workers" / "write_once.py"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
               "2", str(worker), str(tmp_path)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "artifact.txt").read_text() == "written once"
    assert [(tmp_path / f"rank{r}.txt").read_text() for r in (0, 1)] == ["2 True", "2 True"]
