"""The four findings of chapter 5 read from hand-made tables, both ways."""

import pandas as pd

from facecap_lib.evaluation.report import findings


def tables(au_meteor: float, trained_f1: float, qformer_f1: float, exp_votes: float):
    metrics = pd.DataFrame(
        {"METEOR": [au_meteor, 0.10], "ROUGE-L": [0.5, 0.2]}, index=["AU-BLIP", "untrained"]
    )
    probe = pd.DataFrame(
        {"avg F1": [40.0, 35.0, trained_f1, qformer_f1]},
        index=["untrained encoder", "untrained Q-Former", "AU-BLIP encoder", "AU-BLIP Q-Former"],
    )
    strategies = pd.DataFrame(
        {"most complete %": [100 - exp_votes - 10, 10, exp_votes]},
        index=["Mix-BLIP", "Cat-BLIP", "Exp-BLIP"],
    )
    return metrics, probe, strategies


def test_findings_reproduce_when_the_numbers_say_so():
    verdicts = findings(*tables(au_meteor=0.3, trained_f1=50.0, qformer_f1=55.0, exp_votes=70.0))
    assert verdicts["reproduces"].all()
    assert "METEOR 0.300 vs 0.100" in verdicts["evidence"].iloc[0]
    assert "AU-BLIP 55.0 vs 50.0" in verdicts["evidence"].iloc[2]


def test_findings_do_not_reproduce_when_they_do_not():
    verdicts = findings(*tables(au_meteor=0.05, trained_f1=30.0, qformer_f1=20.0, exp_votes=20.0))
    assert not verdicts["reproduces"].any()
