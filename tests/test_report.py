"""The four findings read from hand-made tables of the protocol, both ways; the failure findings,
the spread over seeds and chapter 4's target tables."""

import pandas as pd
import pytest

from facecap_lib.evaluation.findings import findings


def tables(au_meteor: float, trained_f1: float, qformer_f1: float, exp_votes: float):
    """The protocol's tables as a project's report holds them: captions on two test sets,
    linear probes on one AU pair and one emotion pair, strategies per dataset and over all."""
    captions = pd.DataFrame(
        {
            "dataset": ["gft", "gft", "rafau", "rafau"],
            "captioner": ["AU-BLIP", "general"] * 2,
            "METEOR": [au_meteor, 0.10, au_meteor, 0.10],
            "ROUGE-L": [0.5, 0.2, 0.5, 0.2],
        }
    )
    features = ["untrained encoder", "untrained Q-Former", "AU-BLIP encoder", "AU-BLIP Q-Former"]
    probe = pd.DataFrame(
        {
            "dataset": ["bp4d"] * 4 + ["affectnet"] * 4,
            "protocol": ["train / test split"] * 4 + ["one-emotion faces"] * 4,
            "features": features * 2,
            "strategy": "linear probe",
            "avg F1": [40.0, 35.0, trained_f1, qformer_f1] + [None] * 4,
            "accuracy": [None] * 4 + [30.0] * 4,
        }
    )
    votes = [100 - exp_votes - 10, 10, exp_votes]
    strategies = pd.DataFrame(
        {
            "dataset": ["all"] * 3 + ["gft"] * 3,
            "strategy": ["Mix-BLIP", "Cat-BLIP", "Exp-BLIP"] * 2,
            "most complete %": votes + [80.0, 10.0, 10.0],  # one dataset does not decide
        }
    )
    return captions, probe, strategies


SPREAD = {"METEOR": 0.02, "ROUGE-L": 0.05, "probe F1": 3.0}


def test_findings_reproduce_when_the_numbers_say_so():
    verdicts = findings(
        *tables(au_meteor=0.3, trained_f1=50.0, qformer_f1=55.0, exp_votes=70.0), SPREAD
    )
    assert (verdicts["verdict"] == "reproduced").all()
    assert "gft METEOR 0.300 vs 0.100 (+0.200, spread 0.02)" in verdicts["evidence"].iloc[0]
    assert "rafau ROUGE-L" in verdicts["evidence"].iloc[0]
    # against the plain encoder, pair by pair, not the best of the others
    assert "AU-BLIP on bp4d +10.0" in verdicts["evidence"].iloc[1]
    assert "AU-BLIP on bp4d +5.0" in verdicts["evidence"].iloc[2]
    assert "affectnet" not in verdicts["evidence"].iloc[1]  # an emotion pair has no AU F1


def test_findings_need_more_than_the_spread_and_more_than_one_seed():
    small = findings(
        *tables(au_meteor=0.11, trained_f1=42.0, qformer_f1=43.0, exp_votes=70.0), SPREAD
    )
    assert list(small["verdict"]) == ["within the spread"] * 3 + ["reproduced"]
    one_seed = findings(*tables(au_meteor=0.3, trained_f1=50.0, qformer_f1=55.0, exp_votes=70.0))
    assert list(one_seed["verdict"][:3]) == ["one seed: same direction"] * 3
    assert "spread not measured" in one_seed["evidence"].iloc[0]


def test_findings_do_not_reproduce_when_they_do_not():
    verdicts = findings(
        *tables(au_meteor=0.05, trained_f1=30.0, qformer_f1=20.0, exp_votes=20.0), SPREAD
    )
    assert (verdicts["verdict"] == "not reproduced").all()


def test_without_a_general_captioner_the_first_claim_is_not_measured():
    captions, probe, strategies = tables(0.3, 50.0, 55.0, 70.0)
    verdicts = findings(captions[captions["captioner"] != "general"], probe, strategies, SPREAD)
    assert verdicts["verdict"].iloc[0] == "not measured"
    assert "no general captioner" in verdicts["evidence"].iloc[0]


def test_the_compared_quantities_line_up_over_seeds():
    from facecap_lib.evaluation.findings import quantities
    from facecap_lib.evaluation.measured import seed_spread

    runs = [quantities(*tables(m, f, 50.0, 70.0)[:2]) for m, f in ((0.30, 50.0), (0.27, 46.0))]
    assert set(runs[0]["METEOR"]) == {
        "gft AU-BLIP",
        "gft general",
        "rafau AU-BLIP",
        "rafau general",
    }
    assert runs[0]["probe F1"]["bp4d train / test split AU-BLIP encoder"] == 50.0
    spread = seed_spread(runs)
    assert spread["METEOR"] == pytest.approx(0.03) and spread["probe F1"] == pytest.approx(4.0)


def test_failure_findings_by_hand():
    from facecap_lib.evaluation.failures import failure_findings

    repeats = pd.DataFrame(
        {"repeated sentence %": [80.0, 10.0, 30.0]}, index=["untrained", "AU-BLIP", "Exp-BLIP"]
    )
    recall = pd.DataFrame(
        {
            "occluder": ["mask", "mask", "hand"],
            "au": ["AU12", "AU25", "AU1"],
            "drop": [0.5, 0.3, 0.0],
        }
    )
    confusion = pd.DataFrame(
        [[8, 2, 0], [1, 5, 4]],
        index=["happiness", "contempt"],
        columns=["happiness", "contempt", "none"],
    )
    table = failure_findings(repeats, recall, confusion)
    assert table["seen here"].all()
    below = failure_findings(
        repeats.assign(**{"repeated sentence %": [80.0, 1.0, 2.0]}),
        recall.assign(drop=[0.05, 0.05, 0.0]),
        confusion,
    )  # a drop of 0.03 and 1.5% repeats are under the stated thresholds
    assert list(below["seen here"]) == [False, True, False]
    assert "(threshold 0.10)" in below["evidence"].iloc[0]
    evidence = table["evidence"].tolist()
    assert "mean recall drop 0.27" in evidence[0] and "mask 0.40" in evidence[0]
    assert (
        "other than the label for 15% of labelled faces" in evidence[1]
    )  # (2 + 1) of 20; "none" is not a wrong emotion
    assert "happiness described as contempt" in evidence[1]
    assert evidence[2].startswith("20.0%") and "untrained: 80.0%" in evidence[2]
    assert "threshold 5%" in evidence[2]


def test_the_spread_is_the_widest_range_over_seeds():
    from facecap_lib.evaluation.measured import seed_spread

    runs = [
        {"METEOR": {"AU-BLIP": 0.30, "general": 0.10}, "probe F1": {"a": 40.0, "b": 50.0}},
        {"METEOR": {"AU-BLIP": 0.25, "general": 0.12}, "probe F1": {"a": 44.0, "b": 49.0}},
        {"METEOR": {"AU-BLIP": 0.28, "general": 0.11}, "probe F1": {"a": 41.0, "b": 52.0}},
    ]
    spread = seed_spread(runs)
    assert spread["METEOR"] == pytest.approx(0.05) and spread["probe F1"] == pytest.approx(4.0)


def test_the_measured_spread_is_read_with_its_provenance(tmp_path, monkeypatch):
    import json

    from facecap_lib import paths
    from facecap_lib.evaluation.measured import measured_spread, seeds_by_encoder

    monkeypatch.setattr(paths, "find_repo_root", lambda: tmp_path)
    assert measured_spread("tiny") == (None, None)  # never measured for this preset
    (tmp_path / "book" / "measured").mkdir(parents=True)
    provenance = {"command": "python benchmarks/chapter4_seeds.py --chapter5", "commit": "abc"}
    (tmp_path / "book" / "measured" / "seeds-tiny.json").write_text(
        json.dumps({"seeds": {}, "spread": {"METEOR": 0.01}, "provenance": provenance})
    )
    assert measured_spread("tiny") == ({"METEOR": 0.01}, provenance)
    assert measured_spread("small") == (None, None)
    assert list(seeds_by_encoder("tiny")) == ["AU-supervised (shipped)"]  # the other, unmeasured
    (tmp_path / "book" / "measured" / "seeds-tiny-contrastive.json").write_text('{"seeds": {}}')
    assert seeds_by_encoder("tiny")["contrastive (no labels)"] == {"seeds": {}}


def test_the_target_table_judges_by_the_seeds_mean_where_measured():
    from facecap_lib.evaluation.targets import TARGETS, target_table

    names = list(TARGETS)
    this_run = {name: TARGETS[name] + 0.01 for name in names}  # every target met by one run
    alone = target_table(this_run)
    assert alone["met"].all() and "mean over seeds" not in alone
    low = {name: TARGETS[name] - 0.1 for name in names}
    seeds = {"seeds": {"0": {**this_run, "i2t@1": 0.3}, "1": low, "2": low}}
    table = target_table(this_run, seeds)
    assert not table["met"].any()  # the mean of three seeds, two of them short, misses
    first = names[0]
    assert table.loc[first, "min"] == pytest.approx(TARGETS[first] - 0.1)
    assert table.loc[first, "max"] == pytest.approx(TARGETS[first] + 0.01)
    assert table.loc[first, "mean over seeds"] == pytest.approx(TARGETS[first] - 0.19 / 3)
    assert (table["seeds"] == 3).all()
    assert table.loc[first, "margin"] == pytest.approx(-0.19 / 3)  # short by that much


def test_a_rebuild_moves_the_means_by_the_spread_the_margin_must_exceed():
    from facecap_lib.evaluation.targets import TARGETS, build_spread

    names = list(TARGETS)
    here = {"seeds": {s: {n: TARGETS[n] + 0.05 for n in names} for s in "012"}}
    moved = {"0": 0.05, "1": 0.03, "2": 0.07, "3": -0.5}  # seed 3 only there: not compared
    there = {"seeds": {s: {n: TARGETS[n] + m for n in names} for s, m in moved.items()}}
    table = build_spread({"here": here, "there": there})
    assert table.attrs["seeds"] == ["0", "1", "2"]
    first = names[0]
    assert table.loc[first, "there: mean"] == pytest.approx(TARGETS[first] + 0.05)
    assert table["spread of the means"].max() == pytest.approx(0.0, abs=1e-12)
    assert table.loc[first, "largest change of one seed"] == pytest.approx(0.02)
    assert table["holds"].all()  # margins 0.05, means that did not move
    low = {"seeds": {s: {n: TARGETS[n] + 0.01 for n in names} for s in "012"}}
    table = build_spread({"here": here, "low": low})  # the means 0.04 apart, the lower 0.01 over
    assert table.loc[first, "margin"] == pytest.approx(0.01)
    assert table.loc[first, "spread of the means"] == pytest.approx(0.04)
    assert not table["holds"].any()
    with pytest.raises(ValueError, match="two or more"):
        build_spread({"here": here})
    with pytest.raises(ValueError, match="share no seed"):
        build_spread({"here": here, "other": {"seeds": {"7": here["seeds"]["0"]}}})


def test_rebuilds_are_named_by_their_device(tmp_path, monkeypatch):
    import json

    from facecap_lib import paths
    from facecap_lib.evaluation.measured import builds

    monkeypatch.setattr(paths, "find_repo_root", lambda: tmp_path)
    folder = tmp_path / "book" / "measured"
    folder.mkdir(parents=True)
    assert builds("tiny") == {}

    def write(name, device, commit="abc"):
        provenance = {"device": device, "commit": commit}
        (folder / name).write_text(json.dumps({"seeds": {}, "provenance": provenance}))

    write("seeds-tiny.json", "CPU (x86_64, 2 threads, AVX512 kernels)")
    write("seeds-tiny-avx2.json", "CPU (x86_64, 2 threads, AVX2 kernels)")
    assert list(builds("tiny")) == [
        "CPU (x86_64, 2 threads, AVX512 kernels)", "CPU (x86_64, 2 threads, AVX2 kernels)"
    ]  # fmt: skip
    write("seeds-tiny-avx2.json", "CPU (x86_64, 2 threads, AVX2 kernels)", commit="def")
    assert list(builds("tiny"))[1] == "CPU (x86_64, 2 threads, AVX2 kernels) at def"
    write("seeds-tiny-avx2.json", "CPU (x86_64, 2 threads, AVX512 kernels)")
    with pytest.raises(ValueError, match="one device and commit"):
        builds("tiny")


def test_encoders_side_by_side_by_their_seeds_mean():
    from facecap_lib.evaluation.targets import TARGETS, encoder_targets

    names = list(TARGETS)
    above = {"seeds": {s: {n: TARGETS[n] + 0.05 for n in names} for s in "012"}}
    mixed = {"seeds": {"0": {n: TARGETS[n] - 0.03 for n in names}, "1": above["seeds"]["0"]}}
    table = encoder_targets({"supervised": above, "contrastive": mixed})
    assert list(table.index) == names
    assert list(table["supervised: margin"]) == pytest.approx([0.05] * len(names))
    assert list(table["contrastive: margin"]) == pytest.approx([0.01] * len(names))
    assert table["contrastive: mean over 2 seeds"].iloc[0] == pytest.approx(
        TARGETS[names[0]] + 0.01
    )


def test_a_lever_counts_only_past_the_range_over_seeds():
    from facecap_lib.evaluation.targets import AU_TARGET, EMOTION_TARGET, lever_table

    def row(au, emotion, steps=750, faces=4000):
        return {AU_TARGET: au, EMOTION_TARGET: emotion, "captioner steps": steps,
                "training faces": faces}  # fmt: skip

    levers = {"levers": {"base": row(0.75, 0.94), "steps": row(0.76, 0.90, steps=1500)}}
    seeds = {"seeds": {"0": row(0.74, 0.94), "1": row(0.76, 0.95)}}  # ranges 0.02 and 0.01
    table = lever_table(levers, seeds)
    assert table.loc["steps", f"change: {AU_TARGET}"] == pytest.approx(0.01)
    assert not table.loc["steps", "beyond the seed range (0.020)"]  # +0.01 is a reseed's worth
    assert table.loc["steps", "beyond the seed range (0.010)"]  # -0.04 is not
    assert table.loc["steps", "captioner steps"] == 1500
    assert table.loc["steps", "verdict"] == "loses" and table.loc["base", "verdict"] != "gains"
    assert not any(c.startswith("beyond") for c in lever_table(levers))  # no seeds, no verdict


def test_a_cpu_is_named_with_the_kernels_it_runs(monkeypatch):
    import torch

    from facecap_lib.training.provenance import device_name

    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    capability = torch.backends.cpu.get_cpu_capability()
    assert device_name(torch.device("cpu")).endswith(f"threads, {capability} kernels)")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert f"{capability}, oneDNN up to AVX2 kernels" in device_name(torch.device("cpu"))


def test_the_books_rebuilds_measure_its_seeds(repo):
    """``book/measured``'s rebuilds (chapter 4's "another machine's build") are of the same seeds
    as the book's measurement, and each names the device that made it."""
    from facecap_lib.evaluation.measured import REBUILDS, builds, measured_seeds
    from facecap_lib.evaluation.targets import build_spread

    found = builds("tiny")
    assert len(found) == 1 + len(REBUILDS)
    assert all("device" in seeds["provenance"] for seeds in list(found.values())[1:])
    table = build_spread(found)
    assert table.attrs["seeds"] == list(measured_seeds("tiny")["seeds"])
