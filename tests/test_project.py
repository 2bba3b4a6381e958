"""Project files and ``facecap run``: SynthFACS copies written in the real datasets' formats,
named by a project file exactly as real folders would be."""

import json

import pytest
import yaml

from facecap_lib.cli import main
from facecap_lib.data.synth.corpus import CorpusConfig, synthesize
from facecap_lib.project import Project, ProjectError, load_project, project_from_dict, to_dict
from facecap_lib.runner import ProjectRun, stages_between


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    config = CorpusConfig.smoke()
    for like in ("bp4d", "rafau", "affectnet"):
        synthesize(like, root / like, config, workers=1, progress=False)
    return root


def write(tmp_path, data) -> str:
    path = tmp_path / "project.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def project_data(folders, **changes) -> dict:
    data = {
        "name": "synth",
        "output": "out",
        "datasets": [
            {"name": "bp4d", "folder": str(folders / "bp4d"), "labels": ["aus"]},
            {"name": "affectnet", "folder": str(folders / "affectnet"), "labels": ["emotions"]},
        ],
        "training": {"settings": "smoke"},
    }
    return {**data, **changes}


def test_a_project_file_reads_into_frozen_dataclasses(folders, tmp_path):
    project = load_project(write(tmp_path, project_data(folders)))
    assert isinstance(project, Project) and project.datasets[0].labels == ("aus",)
    assert project.output == str((tmp_path / "out").resolve())  # relative to the file
    assert project.splits.bp4d_test_folds == (3,) and project.describer.kind == "offline"
    again = project_from_dict(to_dict(project), "again")
    assert again.datasets == project.datasets and again.training == project.training


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"outptu": "x"}, r"project.outptu: unknown key"),
        ({"datasets": [{"name": "bp5d", "folder": "."}]}, r"datasets\[0\].name: 'bp5d' is not one"),
        ({"datasets": [{"name": "bp4d", "folder": "nowhere"}]}, r"datasets\[0\].folder: .*nowhere is not a folder"),
        ({"datasets": [{"name": "bp4d", "folder": ".", "labels": ["au"]}]}, r"labels: 'au' is not one"),
        ({"datasets": [{"name": "bp4d", "folder": ".", "strict": "yes"}]}, r"strict: expected bool"),
        ({"datasets": []}, r"datasets: name at least one dataset, or synthfacs"),
        ({"model": {"preset": "huge"}}, r"model.preset: 'huge' is not one of"),
        ({"model": {"lavis_checkpoint": "none.pth"}}, r"lavis_checkpoint: .*none.pth is not a file"),
        ({"describer": {"kind": "llm"}}, r"describer.model: an llm describer needs a model"),
        ({"splits": {"bp4d_test_folds": [4]}}, r"bp4d_test_folds: 4 is not one of"),
        ({"training": {"recipe": {"captioner": {"fit": {"lrr": 1}}}}}, r"training.recipe.captioner.fit.lrr: not a setting"),
        ({"training": {"recipe": {"captioner": {"fit": {"max_steps": 0}}}}}, r"recipe.captioner.fit.max_steps: must be at least 1"),
        ({"training": {"recipe": []}}, r"training.recipe: expected a mapping"),
        ({"datasets": [], "synthfacs": {"renderer": 4}}, r"synthfacs.renderer: 4 is not one of 2, 3"),
    ],
)  # fmt: skip
def test_bad_project_files_get_one_error_naming_the_field(folders, tmp_path, change, message):
    path = write(tmp_path, project_data(folders, **change))
    with pytest.raises(ProjectError, match=message) as caught:
        load_project(path)
    assert str(caught.value).startswith(path)


def test_the_recipe_is_the_settings_with_the_projects_changes(folders, tmp_path):
    from facecap_lib.project import recipe_config
    from facecap_lib.training.stages import RecipeConfig

    plain = load_project(write(tmp_path, project_data(folders, training={})))
    assert recipe_config(plain).fingerprint() == RecipeConfig().fingerprint()
    changes = {"captioner": {"fit": {"lr": 1.0e-5, "max_steps": 7}, "layer_decay": 0.9}}
    changed = load_project(write(tmp_path, project_data(folders, training={"recipe": changes})))
    config = recipe_config(changed)
    assert (config.captioner.fit.lr, config.captioner.fit.max_steps) == (1.0e-5, 7)
    assert config.captioner.layer_decay == 0.9
    assert config.captioner.fit.batch_size == RecipeConfig().captioner.fit.batch_size  # kept


def test_a_yaml_error_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\noutput: [unclosed\n")
    with pytest.raises(ProjectError, match=r"broken.yaml: line \d: not valid YAML"):
        load_project(path)


def test_a_folder_in_another_datasets_format_fails_before_any_work(folders, tmp_path):
    data = project_data(folders, datasets=[{"name": "bp4d", "folder": str(folders / "rafau")}])
    run = ProjectRun(load_project(write(tmp_path, data)), log=None, progress=False)
    with pytest.raises(ProjectError, match=r"project.yaml: datasets: .*rafau"):
        run.run()
    assert not (tmp_path / "out" / "project.json").exists()  # nothing started


def test_stages_between():
    assert stages_between(until="au") == ["curate", "captions", "qformer", "au"]
    assert stages_between("pseudo") == ["pseudo"]
    with pytest.raises(ValueError, match="unknown stage 'ua'"):
        stages_between(until="ua")


def test_the_dry_run_plans_faces_captions_and_steps(folders, tmp_path, capsys):
    path = write(tmp_path, project_data(folders))
    assert main(["run", path, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "bp4d" in out and "affectnet" in out and "train images" in out
    assert "OfflineDescriber" in out and "no calls, no cost" in out
    assert "qformer" in out and "exp" in out and "done: curate" in out
    # the evaluation's fine-tunes: 11 rows (the plain encoder, 5 encoders, 5 Q-Formers) on
    # AffectNet's emotions; these BP4D folders have no test-fold subject, so no AU classifier
    assert "no AU classifiers (no AU-labelled test faces); emotion classifiers on affectnet" in out
    # on AffectNet's 19 training faces, each fine-tune once: Table 3's 8 (the plain encoder,
    # AU/Emot/Exp-BLIP; encoder and Q-Former) and the supplementary's Mix and Cat rows (its
    # other 7 are Table 3's); the plain encoder's 2 for 50 epochs (ceil(50 x 19 / 32) = 30
    # steps each), the 10 others for 20 (12 steps each)
    assert "probes per dataset: 1 train / test pairs (affectnet one-emotion faces)" in out
    assert "fine-tunes: 12, 180 steps of 32 in all" in out
    faces = ProjectRun(load_project(path), log=None, progress=False).faces()
    bp4d = faces[faces["dataset"] == "bp4d"]
    assert bp4d["emotions"].map(len).eq(0).all() and bp4d["AU6"].notna().any()  # labels: [aus]
    affectnet = faces[faces["dataset"] == "affectnet"]
    assert affectnet["AU6"].isna().all() and affectnet["emotions"].map(len).gt(0).all()


def test_the_dry_run_prices_every_fusion_once_its_sentences_exist(
    folders, tmp_path, capsys, monkeypatch
):
    """An LLM project: after the caption stage the corpus's fusions are found cached; stage
    pseudo's (the faces with one aspect, the other from AU-BLIP or Emot-BLIP) are priced only
    once those have written their pseudo-captions, then found cached after the stage ran. The
    dry runs call nothing."""
    from facecap_lib.captions.local_server import LocalServer

    monkeypatch.setenv("FACECAP_TEST_KEY", "sk-local")
    with LocalServer() as server:
        describer = {"kind": "llm", "model": "local", "base_url": server.base_url,
                     "api_key_env": "FACECAP_TEST_KEY"}  # fmt: skip
        path = write(tmp_path, project_data(folders, describer=describer))
        assert main(["run", path, "--until", "emot", "--device", "cpu"]) == 0
        capsys.readouterr()
        asked = sum(server.requests.values())
        assert main(["run", path, "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert "AU captions: 0 calls to make" in out and "fusion: 0 calls to make" in out
        assert "pseudo-captions: not priced yet (" in out and "are not saved)" in out
        assert main(["run", path, "--stage", "pseudo", "--device", "cpu"]) == 0
        capsys.readouterr()
        assert sum(server.requests.values()) > asked  # stage pseudo's own fusions
        asked = sum(server.requests.values())
        assert main(["run", path, "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert "fusion with AU-BLIP's and Emot-BLIP's pseudo-captions: 0 calls to make" in out
        assert sum(server.requests.values()) == asked


def test_a_changed_label_file_makes_a_new_face_table(folders, tmp_path):
    import shutil

    copy = tmp_path / "bp4d"
    shutil.copytree(folders / "bp4d", copy)
    data = project_data(folders, datasets=[{"name": "bp4d", "folder": str(copy)}])
    run = ProjectRun(load_project(write(tmp_path, data)), log=None, progress=False)
    key = run.faces_key()
    label = next(p for p in sorted(copy.rglob("*.csv")))
    label.write_text(label.read_text())  # same content, new modification time
    assert ProjectRun(load_project(write(tmp_path, data)), log=None).faces_key() != key


def test_a_lavis_checkpoint_of_another_shape_fails_before_training(folders, tmp_path):
    import torch

    checkpoint = tmp_path / "au_blip.pth"
    torch.save({"model": {"opt_proj.weight": torch.zeros(2560, 768)}}, checkpoint)
    data = project_data(folders, model={"preset": "tiny", "lavis_checkpoint": str(checkpoint)})
    run = ProjectRun(load_project(write(tmp_path, data)), log=None, progress=False)
    with pytest.raises(
        ProjectError, match=r"lavis_checkpoint: .*language_projection.weight of shape \(2560, 768\)"
    ):
        run.check()


def test_facecap_run_trains_up_to_a_stage_and_skips_it_the_second_time(folders, tmp_path, capsys):
    path = write(tmp_path, project_data(folders))
    assert main(["run", path, "--until", "au", "--device", "cpu"]) == 0
    run = ProjectRun(load_project(path), log=None, progress=False)
    assert run.done() == ["curate", "captions", "qformer", "au"]
    saved = json.loads((tmp_path / "out" / "project.json").read_text())
    assert saved["datasets"][0]["labels"] == ["aus"]
    final = run.run_dir() / "au-blip" / "final" / "config.json"
    before = final.stat().st_mtime_ns
    assert main(["run", path, "--stage", "au", "--device", "cpu"]) == 0
    assert final.stat().st_mtime_ns == before  # loaded, not trained again
    checkpoint = final.parent
    recorded = json.loads((checkpoint / "training_data.json").read_text())
    assert recorded["synthfacs_only"] and set(recorded["datasets"]) == {"bp4d"}  # AU-BLIP's
    face = next((folders / "bp4d").rglob("*.jpg"))
    capsys.readouterr()
    assert main(["describe", str(face), "--checkpoint", str(checkpoint), "--beams", "1"]) == 0
    assert "trained on SynthFACS renders only (bp4d)" in capsys.readouterr().err


def test_data_synth_writes_every_format_into_its_own_folder(tmp_path, capsys):
    from facecap_lib.data import sources
    from facecap_lib.data.synth.corpus import FORMATS

    out = tmp_path / "synth"
    args = ["data", "synth", "--like", "all", "--out", str(out), "--smoke", "--workers", "1"]
    args += ["--subjects", "2", "--frames", "4", "--images", "8"]
    assert main(args) == 0
    for like in FORMATS:  # each loads with its own dataset's loader
        assert len(sources.load(like, out / like)) > 0, like
    assert main(["data", "synth", "--like", "bp4d,ck", "--out", str(out)]) == 1
    assert "unknown format 'ck'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def every_format(tmp_path_factory):
    out = tmp_path_factory.mktemp("formats")
    args = ["data", "synth", "--like", "all", "--out", str(out), "--smoke", "--workers", "1"]
    assert main(args + ["--subjects", "2", "--frames", "6", "--images", "8"]) == 0
    return out


@pytest.mark.parametrize(
    "name", ["synthfacs-book", "exp-blip-vitg-opt6.7b", "exp-blip-vitb-opt2.7b"]
)
def test_the_shipped_projects_plan_on_synthfacs_copies_of_their_datasets(
    name, every_format, tmp_path, monkeypatch
):
    """Each shipped project with its dataset folders pointed at SynthFACS copies, exactly as a
    user points them at real ones, and nothing else changed but the output (and, for ViT-B, the
    foundations the user builds first, here the shipped tiny ones' absence: random weights)."""
    from facecap_lib.notebooks import find_repo_root

    data = yaml.safe_load((find_repo_root() / "projects" / f"{name}.yaml").read_text())
    data["output"] = str(tmp_path / "out")
    for dataset in data.get("datasets", []):
        dataset["folder"] = str(every_format / dataset["name"])
    if "synthfacs" in data:
        data["synthfacs"]["size"] = "smoke"
    if data["model"].get("foundations") not in (None, "shipped"):
        data["model"]["foundations"] = None
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")
    project = project_from_dict(data, name)
    plan = ProjectRun(project, log=None, progress=False).plan()
    expected = {d["name"] for d in data.get("datasets", [])} or {"bp4d", "affectnet"}
    assert expected <= set(plan.faces.index)
    assert list(plan.training["stage"]) == ["qformer", "au", "emot", "mix", "cat", "exp"]
    if project.describer.kind == "llm":
        assert plan.captions[0].startswith("AU captions:") and "$" in plan.captions[0]


def test_torchrun_runs_a_project_like_one_process(folders, tmp_path):
    """Two processes (gloo on the CPU) run the project up to AU-BLIP: every artifact is written
    once, the caption corpus is the one a single process writes, and stage 1's and AU-BLIP's
    losses are one process's to float tolerance (the global batch split in two: token means over
    the whole batch, hard negatives drawn from it, BatchNorm over it). The frozen language
    model's dropout is off in both, since each rank draws its own masks."""
    import os
    import subprocess
    import sys

    import pandas as pd

    training = {"settings": "smoke", "recipe": {"captioner": {"frozen_lm_dropout": False}}}
    single = write(tmp_path, project_data(folders, output="single", training=training))
    assert main(["run", single, "--until", "au", "--device", "cpu"]) == 0
    two = tmp_path / "two.yaml"
    two.write_text(yaml.safe_dump(project_data(folders, output="two", training=training)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    command += ["-m", "facecap_lib.cli", "run", str(two), "--until", "au", "--device", "cpu"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("output: ") == 1  # one rank speaks
    ours = ProjectRun(load_project(two), log=None, progress=False)
    theirs = ProjectRun(load_project(single), log=None, progress=False)
    assert ours.done() == ["curate", "captions", "qformer", "au"]
    pd.testing.assert_frame_equal(
        pd.read_parquet(ours.captions_dir() / "captions.parquet"),
        pd.read_parquet(theirs.captions_dir() / "captions.parquet"),
    )
    for stage in ("qformer", "au-blip"):
        histories = [
            json.loads((run.run_dir() / stage / "final" / "history.json").read_text())
            for run in (ours, theirs)
        ]
        losses = [[h["loss"] for h in history if "loss" in h] for history in histories]
        assert len(losses[0]) >= 2 and len(losses[0]) == len(losses[1]), stage
        assert losses[0] == pytest.approx(losses[1], rel=1e-4, abs=1e-5), stage


def test_a_synthfacs_project_names_its_renderer(tmp_path):
    from facecap_lib.project import SynthFACS

    data = {"name": "r3", "output": "out", "synthfacs": {"renderer": 3}}
    project = load_project(write(tmp_path, data))
    corpus = project.synthfacs.corpus(project.splits)
    assert corpus.renderer == 3 and SynthFACS.of(corpus).corpus(project.splits) == corpus
    book = SynthFACS().corpus(project.splits)
    assert book.renderer == 2 and book.key() != corpus.key()  # its own folder of images


def test_renderer_3s_faces_train_in_their_own_run_folder(tmp_path):
    """Both renderers' corpora have the same labels, so the same captions; not the same models."""
    from facecap_lib.runner import ProjectRun

    runs = {}
    for renderer in (2, 3):
        data = {"name": "r", "output": "out", "synthfacs": {"size": "smoke", "renderer": renderer}}
        run = ProjectRun(load_project(write(tmp_path, data)), log=None)
        runs[renderer] = (run.captions_dir(), run.run_dir())
    assert runs[2][0] == runs[3][0] and runs[2][1] != runs[3][1]


def test_the_book_is_the_shipped_synthfacs_project():
    from facecap_lib.chapters import book_project
    from facecap_lib.notebooks import find_repo_root

    shipped = load_project(find_repo_root() / "projects" / "synthfacs-book.yaml")
    book = book_project()
    for part in ("synthfacs", "splits", "describer", "model", "training", "evaluation"):
        a, b = getattr(shipped, part), getattr(book, part)
        if part == "synthfacs":
            assert a.corpus() == b.corpus(), part
        else:
            assert a == b, part


def test_a_killed_run_resumes_where_it_stopped(folders, tmp_path, capsys):
    """``facecap run`` killed in the middle of stage 1 (SIGKILL, no clean-up), then run again:
    it resumes from the last checkpoint and ends where an uninterrupted run ends."""
    import os
    import signal
    import subprocess
    import sys
    import time

    recipe = {"qformer": {"fit": {"max_steps": 60, "save_every": 2, "log_every": 2}}}
    killed = write(tmp_path, project_data(folders, output="killed", training={
        "settings": "smoke", "recipe": recipe}))  # fmt: skip
    command = [sys.executable, "-m", "facecap_lib.cli", "run", killed, "--until", "qformer"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command + ["--device", "cpu"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 300
    while not list((tmp_path / "killed").glob("runs/*/qformer/checkpoint-4")):
        assert process.poll() is None and time.monotonic() < deadline, "no checkpoint to kill at"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not list((tmp_path / "killed").glob("runs/*/qformer/final"))  # stopped mid-stage
    capsys.readouterr()
    assert main(["run", killed, "--until", "qformer", "--device", "cpu"]) == 0
    assert "stage 1: resumed from checkpoint-" in capsys.readouterr().out

    whole = tmp_path / "whole.yaml"
    data = yaml.safe_load(open(killed).read()) | {"output": "whole"}
    whole.write_text(yaml.safe_dump(data))
    assert main(["run", str(whole), "--until", "qformer", "--device", "cpu"]) == 0

    def last_loss(path) -> float:
        run = ProjectRun(load_project(path), log=None, progress=False)
        return json.loads((run.run_dir() / "qformer" / "final" / "history.json").read_text())[-1][
            "loss"
        ]

    assert last_loss(killed) == pytest.approx(last_loss(whole), rel=1e-5)


def test_facecap_run_goes_through_every_stage_to_a_report(tmp_path, capsys):
    """GFT, RAF-AU, BP4D and DISFA (AU-labelled) and AffectNet (emotions), SynthFACS copies named
    as real folders: every stage, then the paper's evaluation per dataset as Markdown, CSV and
    PNG, the supplementary's representation tables included."""
    root = tmp_path / "data"
    args = [
        "data",
        "synth",
        "--like",
        "gft,rafau,bp4d,disfa,affectnet",
        "--out",
        str(root),
        "--smoke",
    ]
    assert (
        main(args + ["--workers", "1", "--subjects", "4", "--frames", "20", "--images", "40"]) == 0
    )
    labels = {"gft": ["aus"], "rafau": ["aus"], "bp4d": ["aus"], "disfa": ["aus"],
              "affectnet": ["emotions"]}  # fmt: skip
    datasets = [
        {"name": n, "folder": str(root / n), "labels": kinds} for n, kinds in labels.items()
    ]
    evaluation = {"faces": 12, "beams": 1, "probe_train_faces": 30, "embedding": "minilm",
                  "fine_tune_epochs": 1, "plain_fine_tune_epochs": 2}  # fmt: skip
    data = project_data(root, name="paper-shaped", datasets=datasets, evaluation=evaluation)
    path = write(tmp_path, data)
    assert main(["run", path, "--device", "cpu"]) == 0
    run = ProjectRun(load_project(path), log=None, progress=False)
    assert run.done() == list(stages_between())
    report = (run.report_dir() / "report.md").read_text()
    assert (
        "## captions" in report and "## faithfulness" in report and "no published number" in report
    )
    # the paper's four claims, one run: no spread over seeds for a project on other folders
    assert "## findings" in report and "one seed" in report
    import pandas as pd

    captions = pd.read_csv(run.report_dir() / "captions.csv")
    assert set(captions["dataset"]) == {"gft", "rafau"}  # the paper's Table 2 sets
    # the five and both baselines: these folders are SynthFACS copies, so the general captioner
    # (trained on what SynthFACS rendered) is trained and scored too
    assert list(captions["captioner"].unique()) == [
        "untrained",
        "general",
        "AU-BLIP",
        "Emot-BLIP",
        "Mix-BLIP",
        "Cat-BLIP",
        "Exp-BLIP",
    ]
    findings = pd.read_csv(run.report_dir() / "findings.csv")
    assert findings["claim"].str.startswith(("(1)", "(2)", "(3)", "(4)")).all()
    assert "gft METEOR" in findings["evidence"].iloc[0]
    assert captions["METEOR"].between(0, 1).all()
    assert captions["MiniLM-sim"].between(0, 100).all()
    faithful = pd.read_csv(run.report_dir() / "faithfulness.csv")
    assert faithful.loc[faithful["dataset"] == "affectnet", "emotions named"].notna().all()
    assert (run.report_dir() / "captions.png").exists()
    strategies = pd.read_csv(run.report_dir() / "strategies.csv")
    assert set(strategies["strategy"]) == {"Mix-BLIP", "Cat-BLIP", "Exp-BLIP"}
    assert {"all", "gft", "affectnet"} <= set(strategies["dataset"])
    assert strategies["completeness %"].between(0, 100).all()
    probes = pd.read_csv(run.report_dir() / "probes.csv")
    protocols = set(zip(probes["dataset"], probes["protocol"], strict=True))
    assert {("gft", "train / test split"), ("bp4d", "3 folds, subject-independent"),
            ("disfa", "3 folds, subject-independent"),
            ("affectnet", "one-emotion faces")} <= protocols  # fmt: skip
    assert set(probes["features"]) >= {"untrained encoder", "AU-BLIP Q-Former", "Exp-BLIP encoder"}
    bp4d = probes[probes["protocol"] == "3 folds, subject-independent"]
    assert bp4d["avg F1"].between(0, 100).all()
    assert probes.loc[probes["dataset"] == "affectnet", "accuracy"].between(0, 100).all()
    assert probes["paper"].isna().all()  # the tiny preset is not the paper's setting
    # supplementary Tables 2-8: every model's encoder and Q-Former, linear probe and fine-tuned,
    # trained on the AU datasets together and tested on each
    rows = ["ViT"] + [f"{s}({m})" for m in ("Emot", "AU", "Mix", "Cat", "Exp")
                      for s in ("ViT", "QFormer")]  # fmt: skip
    for dataset in ("bp4d", "disfa", "gft", "rafau"):
        table = pd.read_csv(run.report_dir() / f"representations-{dataset}.csv")
        assert list(table["features"].unique()) == rows, dataset
        assert set(table["strategy"]) == {"linear probe", "fine-tune"}
        assert table["avg F1"].between(0, 100).all() and table["paper avg F1"].isna().all()
    bp4d = pd.read_csv(run.report_dir() / "representations-bp4d.csv")
    labelled = [c for c in bp4d.columns if c.startswith("AU")]
    from facecap_lib.evaluation.representations import PAPER_AUS, TABLE8_AUS

    assert labelled and set(labelled) <= set(PAPER_AUS["bp4d"])  # the paper's AUs of BP4D
    emotion = pd.read_csv(run.report_dir() / "representations-emotion.csv")
    assert set(emotion["dataset"]) == {"affectnet"} and len(emotion) == 2 * len(rows)
    assert emotion["accuracy"].between(0, 100).all()
    accuracy = pd.read_csv(run.report_dir() / "representations-rafau-accuracy.csv")
    assert {c for c in accuracy.columns if c.startswith("AU")} <= set(TABLE8_AUS)
    assert accuracy["avg accuracy"].between(0, 100).all()
    assert (
        "## representations-bp4d" in report
        and (run.report_dir() / "representations-bp4d.png").exists()
    )
    # every fine-tune once: the supplementary's rows on the AUs and on the emotions, Table 3's
    # 8 (plain encoder, AU/Emot/Exp-BLIP; encoder and Q-Former) on each train / test pair; the
    # 7 of both on AffectNet's emotions are one (the same faces, the same classifier)
    from facecap_lib.evaluation.faces import probe_sets

    pairs = probe_sets(run.faces(), 30, 12)
    tuned = list((run.run_dir() / "eval-fine-tune").iterdir())
    assert len(tuned) == 2 * len(rows) + 8 * len(pairs) - 7
    assert main(["run", path, "--dry-run"]) == 0  # the plan counts exactly those
    assert f"fine-tunes: {len(tuned)}," in capsys.readouterr().out
    assert set(probes["strategy"]) == {"linear probe", "fine-tune"}
    assert probes.loc[probes["strategy"] == "fine-tune", "paper"].isna().all()


def test_the_paper_stands_beside_its_own_setting_only():
    import pandas as pd

    from facecap_lib.evaluation.paper import probes_with_paper, with_paper
    from facecap_lib.evaluation.report import markdown

    table = pd.DataFrame({"dataset": ["gft", "disfa"], "captioner": ["AU-BLIP", "AU-BLIP"],
                          "METEOR": [0.2, 0.1], "images": [10.0, 3.0]})  # fmt: skip
    paper = with_paper(table, "vitg-opt6.7b")
    assert paper["paper METEOR"].tolist()[0] == 0.295 and pd.isna(paper["paper METEOR"][1])
    assert with_paper(table, "tiny")["paper METEOR"].isna().all()

    probes = pd.DataFrame({"dataset": ["bp4d", "affectnet"], "features": ["AU-BLIP Q-Former"] * 2})
    assert probes_with_paper(probes, "vitg-opt6.7b")["paper"].tolist() == [66.6, 52.2]
    assert probes_with_paper(probes, "tiny")["paper"].isna().all()
    from facecap_lib.evaluation.representations import paper as supplementary

    assert supplementary("vitb-opt2.7b", "linear probe", "bp4d", "QFormer(AU)") == 60.9
    assert supplementary("vitb-opt2.7b", "fine-tune", "rafau", "QFormer(Exp)") == 67.4
    assert supplementary("vitg-opt6.7b", "linear probe", "rafau accuracy", "ViT") == 76.3
    assert supplementary("tiny", "linear probe", "bp4d", "QFormer(AU)") is None
    from facecap_lib.evaluation.representations import MODELS, PAPER_ROWS, features

    named = [f.name for f in features(dict.fromkeys(["untrained", *MODELS]))]
    assert named == list(PAPER_ROWS)  # the paper's rows are ours, in its order
    text = markdown(paper)
    assert (
        "| gft | AU-BLIP | 0.200 | 10 | 0.295 |" in text
        and "| disfa | AU-BLIP | 0.100 | 3 |  |" in text
    )


def test_a_timm_final_norm_fails_the_check_unless_the_project_ignores_it(folders, tmp_path):
    import torch

    checkpoint = tmp_path / "vit_b.pth"
    torch.save({"opt_proj.weight": torch.zeros(128, 128), "visual_encoder.norm.weight": torch.ones(128)},
               checkpoint)  # fmt: skip
    model = {"preset": "tiny", "lavis_checkpoint": str(checkpoint)}
    run = ProjectRun(load_project(write(tmp_path, project_data(folders, model=model))), log=None)
    with pytest.raises(ProjectError, match=r"lavis_checkpoint: .*visual_encoder.norm.weight"):
        run.check()
    model["lavis_ignore"] = ["visual_encoder.norm"]
    project = load_project(write(tmp_path, project_data(folders, model=model)))
    ProjectRun(project, log=None).check()  # no error
    from facecap_lib.project import recipe_config

    assert recipe_config(project).captioner.lavis_ignore == ("visual_encoder.norm",)


def test_an_llm_projects_price_comes_from_facecap_llm_price_as_the_chapters(
    folders, tmp_path, monkeypatch
):
    """A model the price list lacks is priced by ``FACECAP_LLM_PRICE`` in a project too, so its
    dry run and budget work; a malformed value is an error naming the variable."""
    from facecap_lib.captions.llm import Price

    monkeypatch.setenv("FACECAP_TEST_KEY", "sk-local")
    describer = {"kind": "llm", "model": "my-local-model", "base_url": "http://127.0.0.1:9/v1",
                 "api_key_env": "FACECAP_TEST_KEY"}  # fmt: skip
    path = write(tmp_path, project_data(folders, describer=describer))
    monkeypatch.setenv("FACECAP_LLM_PRICE", "0.5,1.5")
    run = ProjectRun(load_project(path), log=None, progress=False)
    assert run.describer().client.config.prices["my-local-model"] == Price(0.5, 1.5)
    monkeypatch.setenv("FACECAP_LLM_PRICE", "cheap")
    with pytest.raises(ValueError, match="FACECAP_LLM_PRICE must be"):
        ProjectRun(load_project(path), log=None, progress=False).describer()
