"""``facecap``: the command line. Each subcommand calls the same library function a notebook calls.

Each subcommand imports what it runs inside its own function: most of the library loads torch
and transformers (seconds), which ``facecap lexicon`` or ``facecap notebooks list`` never need.
These are the package's only function-local imports of its own modules (the import-linter
contract in ``pyproject.toml`` still checks every one of them).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from facecap_lib.data.detection.faces import DETECTORS
from facecap_lib.training import STAGES


def _notebooks_run(args: argparse.Namespace) -> int:
    from facecap_lib.notebooks import NotebookExecutionError, run_notebooks

    try:
        run_notebooks(
            args.names,
            smoke=args.smoke,
            output_dir=args.out,
            force=args.force,
            root=args.root,
            timeout=args.timeout,
            log=lambda line: print(line, file=sys.stderr, flush=True),
            progress_bar=sys.stderr.isatty(),
        )
    except NotebookExecutionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def _notebooks_list(args: argparse.Namespace) -> int:
    from facecap_lib.notebooks import discover, find_repo_root

    try:
        root = find_repo_root(args.root)
        notebooks = discover(root / "notebooks")
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for path in notebooks:
        print(path.relative_to(root))
    return 0


def _lab(args: argparse.Namespace) -> int:
    from facecap_lib.lab import run_lab
    from facecap_lib.notebooks import find_repo_root

    try:
        root = find_repo_root(args.root)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    run_lab(root, port=args.port, token=args.token, browser=not args.no_browser, smoke=args.smoke)
    return 0  # not reached: JupyterLab replaced this process


def _book_build(args: argparse.Namespace) -> int:
    from facecap_lib.book import build_book
    from facecap_lib.notebooks import find_repo_root

    try:
        html = build_book(args.book or find_repo_root() / "book")
    except (RuntimeError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"book: open {html / 'index.html'}")
    return 0


def _lexicon_aus(args: argparse.Namespace) -> int:
    from facecap_lib.lexicon import au_table

    print(au_table().to_string())
    return 0


def _lexicon_parse(args: argparse.Namespace) -> int:
    from facecap_lib.lexicon import format_au_codes, parse_au_codes, parse_au_tokens

    status = 0
    for text in args.codes:
        if args.lenient:
            parsed = parse_au_tokens(text)
            skipped = ", ".join(f"{s.token!r} ({s.reason})" for s in parsed.skipped)
            print(
                f"{text!r}: {format_au_codes(parsed.aus)}"
                + (f"; skipped {skipped}" if skipped else "")
            )
            continue
        try:
            print(f"{text!r}: {format_au_codes(parse_au_codes(text))}")
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            status = 1
    return status


def _data_synth(args: argparse.Namespace) -> int:
    from facecap_lib.data.synth.corpus import FORMATS, CorpusConfig, synthesize
    from facecap_lib.data.synth.render import RENDERER_VERSION

    defaults = CorpusConfig.smoke() if args.smoke else CorpusConfig()
    overrides = {
        k: v
        for k, v in vars(args).items()
        if k in CorpusConfig.__dataclass_fields__ and v is not None
    }
    config = CorpusConfig(**{**defaults.__dict__, **overrides})
    likes = list(FORMATS) if args.like == "all" else args.like.split(",")
    unknown = [like for like in likes if like not in FORMATS]
    if unknown:
        print(f"error: unknown format {unknown[0]!r}; known: {', '.join(FORMATS)}", file=sys.stderr)
        return 1
    for like in likes:
        out = Path(args.out) / like if len(likes) > 1 else Path(args.out)
        try:
            root = synthesize(
                like,
                out,
                config,
                workers=args.workers,
                renderer=RENDERER_VERSION if args.renderer is None else args.renderer,
            )
        except ValueError as err:  # a folder drawn by another renderer or size
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(f"{like}-like SynthFACS corpus written to {root}")
    return 0


def _data_load(args: argparse.Namespace) -> int:
    from facecap_lib.data import sources
    from facecap_lib.data.curate import statistics
    from facecap_lib.data.problems import DataFormatError
    from facecap_lib.data.table import save_face_table

    try:
        table = sources.load(args.dataset, args.root, strict=not args.lenient)
    except (DataFormatError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(statistics(table).to_string())
    if table.attrs.get("problems"):
        print(f"skipped (lenient): {table.attrs['problems']}")
    if args.out:
        print(f"face table written to {save_face_table(table, args.out)}")
    return 0


def _data_curate(args: argparse.Namespace) -> int:
    from facecap_lib.data import sources
    from facecap_lib.data.curate import curate, statistics
    from facecap_lib.data.problems import DataFormatError
    from facecap_lib.data.table import save_face_table

    tables = []
    try:
        for item in args.datasets:
            dataset, _, root = item.partition("=")
            if not root:
                raise ValueError(f"expected DATASET=FOLDER, got {item!r}")
            tables.append(sources.load(dataset, root, strict=not args.lenient))
        folds = {"bp4d": (sources.bp4d.FOLDS, [3])} if args.bp4d_folds else None
        table = curate(
            tables, every=args.every, test_fraction=args.test_fraction, seed=args.seed, folds=folds
        )
    except (DataFormatError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(statistics(table).to_string())
    print(f"curated table written to {save_face_table(table, args.out)}")
    return 0


def _captions_build(args: argparse.Namespace) -> int:
    from facecap_lib.captions import corpus
    from facecap_lib.captions.synthesize import (
        LLMDescriber,
        au_items,
        au_requests,
        default_describer,
    )
    from facecap_lib.data import default_corpus
    from facecap_lib.paths import cache_root

    spec = (
        default_corpus.DefaultCorpus.smoke() if args.smoke else default_corpus.DefaultCorpus.full()
    )
    faces = default_corpus.curated_faces(spec)
    describer = default_describer(cache_root() / "llm" / "answers.sqlite")
    print(f"describer: {type(describer).__name__} ({describer.source})")
    if args.dry_run:
        if not isinstance(describer, LLMDescriber):
            print("offline describer: no calls, no cost")
            return 0
        estimate = describer.client.estimate(au_requests(au_items(faces)))
        print(f"AU captions: {estimate}")
        from facecap_lib.captions.fusion import fusion_lines

        print("\n".join(fusion_lines(faces, describer, au_cached=estimate.calls == 0)))
        return 0
    tables = corpus.caption_corpus(faces, describer)
    for name, table in tables.items():
        print(f"{name}: {len(table)} rows")
    print(f"written to {corpus.corpus_dir(faces, describer)}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from facecap_lib.chapters import chapter_recipe
    from facecap_lib.training import distributed
    from facecap_lib.training.recipe_config import recipe_config

    distributed.init()  # before is_main(): under torchrun every rank would think it is rank 0
    config = recipe_config(args.smoke, args.preset)
    if args.foundations:
        config = replace(
            config, foundations=None if args.foundations == "none" else args.foundations
        )
    recipe = chapter_recipe(
        args.smoke, config=config, init=args.init, parallel=args.parallel, run_dir=args.run,
        device=args.device, seed=args.seed, progress=distributed.is_main(),
    )  # fmt: skip
    names = list(STAGES) if args.stage == "all" else [args.stage]
    for name in names:
        recipe.run(name)
    if distributed.is_main():
        print(recipe.summary().to_string(index=False))
        print(f"run folder: {recipe.run_dir}")
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    from dataclasses import replace

    import transformers

    from facecap_lib.pretraining import build_foundations
    from facecap_lib.training.foundations import FoundationsConfig

    transformers.utils.logging.disable_progress_bar()  # no bars for saving weights
    try:
        base = FoundationsConfig.smoke if args.smoke else FoundationsConfig
        config = base(preset=args.preset, encoder=args.encoder).with_language(args.language)
        if args.faces:
            config = replace(config, corpus=replace(config.corpus, faces=args.faces))
        if args.renderer is not None:  # 0 is a renderer to refuse, not a missing one
            config = replace(config, corpus=replace(config.corpus, renderer=args.renderer))
        if args.steps:
            part = getattr(config, args.encoder)  # the encoder objective's own settings
            part = replace(part, fit=replace(part.fit, max_steps=args.steps))
            config = replace(config, **{args.encoder: part})
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    command = "facecap " + " ".join(args.argv)
    foundations = build_foundations(
        config, args.out, device=args.device, command=command, progress=sys.stderr.isatty(),
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )  # fmt: skip
    manifest = foundations.manifest
    print(f"foundations of {manifest['preset']} in {foundations.folder}")
    print(
        f"encoder ({manifest['encoder_objective']}): final losses {manifest['final_losses']['encoder']}"
    )
    print(f"language model: final losses {manifest['final_losses']['language_model']}")
    print(
        f"linear probe on new faces: mean AU F1 {manifest['probe']['mean_f1']}, ROC-AUC {manifest['probe']['mean_auc']}"
    )
    print(f"wall time {manifest['wall_time_s']} s on {manifest['device']}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from facecap_lib.data.problems import DataFormatError
    from facecap_lib.project import ProjectError, load_project
    from facecap_lib.runner import ProjectRun, stages_between
    from facecap_lib.training import distributed

    distributed.init()
    try:
        stages_between(args.stage, args.until)
        project = load_project(args.project)
        run = ProjectRun(project, device=args.device, progress=distributed.is_main())
        if args.dry_run:
            run.check()
            print(run.plan().text())
            return 0
        run.run(args.stage, args.until)
    except (ProjectError, DataFormatError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if distributed.is_main():
        print(f"output: {project.output}")
    return 0


def _ship_captioners(args: argparse.Namespace) -> int:
    import time

    from facecap_lib.chapters import chapter_recipe
    from facecap_lib.describing.shipped import SHIPPED, ship
    from facecap_lib.evaluation import targets
    from facecap_lib.models.device import resolve_device
    from facecap_lib.training.provenance import device_name

    started = time.time()
    recipe = chapter_recipe(args.smoke, progress=True)
    for stage in ("au", "exp"):  # and what they stand on: the recipe trains those first
        recipe.run(stage)
    checkpoints = {"exp-blip": recipe.run("exp").final, "au-blip": recipe.run("au").final}

    def figures(shipped) -> dict:
        au = targets.au_caption_f1(recipe, shipped["au-blip"], args.faces)
        exp = targets.emotion_naming(recipe, shipped["exp-blip"], args.faces)
        exp_au = targets.au_caption_f1(recipe, shipped["exp-blip"], args.faces)
        return {
            "held_out_faces": args.faces,
            "AU-BLIP: mean per-AU F1": round(float(au["f1"].mean()), 4),
            "Exp-BLIP: mean per-AU F1": round(float(exp_au["f1"].mean()), 4),
            "Exp-BLIP: names the emotion, one-emotion faces": round(
                float(exp.loc[exp["single"], "hit"].mean()), 4
            ),
            "Exp-BLIP: names both emotions, compound faces": round(
                float(exp.loc[~exp["single"], "hit"].mean()), 4
            ),
        }

    command = "facecap ship-captioners" + (" --smoke" if args.smoke else "")
    data = ship(
        checkpoints, Path(args.out) if args.out else SHIPPED, command=command,
        run=recipe.run_dir.name, device=device_name(resolve_device(recipe.device)),
        figures=figures, started=started,
    )  # fmt: skip
    print(json.dumps({k: data[k] for k in ("bytes", "figures", "commit")}, indent=1))
    return 0


def _export_lavis(args: argparse.Namespace) -> int:
    import torch

    from facecap_lib.inference import load_captioner
    from facecap_lib.models.lavis import to_lavis_state_dict

    try:
        model, _ = load_captioner(args.checkpoint, device="cpu", dtype=torch.float32)
        state = to_lavis_state_dict(model, language_model=args.language_model)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {args.checkpoint}: {err}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state}, out)
    print(f"{out}: {len(state)} tensors in LAVIS Blip2OPT names")
    return 0


def _describe(args: argparse.Namespace) -> int:
    import transformers

    from facecap_lib.data.video import is_video
    from facecap_lib.describing import describe_photos, write
    from facecap_lib.inference import synthfacs_warning

    transformers.utils.logging.disable_progress_bar()  # no bars for loading weights
    if args.checkpoint is None:
        from facecap_lib.describing.shipped import shipped_captioner

        try:
            args.checkpoint = str(shipped_captioner(args.captioner))
        except FileNotFoundError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    warning = synthfacs_warning(args.checkpoint)
    if warning:
        print(warning, file=sys.stderr)
    videos = [p for p in args.photos if is_video(p)]
    photos = [p for p in args.photos if not is_video(p)]
    if videos and (args.no_crop or args.sample or args.decoding):
        print(
            "error: --no-crop, --sample and --decoding are for photos, not clips", file=sys.stderr
        )
        return 1
    if args.smooth < 1:
        print(f"error: --smooth must be at least 1, got {args.smooth}", file=sys.stderr)
        return 1
    options = {
        "crop": "none" if args.no_crop else "face", "detector": args.detector, "beams": args.beams,
        "max_new_tokens": args.max_new_tokens, "do_sample": args.sample,
        "batch_size": args.batch_size, **({"decoding": args.decoding} if args.decoding else {}),
    }  # fmt: skip
    described = 0
    if photos:
        try:
            frame = describe_photos(
                photos, args.checkpoint, progress=len(photos) > 1 and sys.stderr.isatty(), **options
            )
        except (FileNotFoundError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        fmt = "json" if args.json else args.format
        out = Path(args.out) if args.out and not videos else None
        with open(out, "w", newline="") if out else contextlib.nullcontext(sys.stdout) as stream:
            write(frame, fmt, stream)
        if out:
            print(f"{len(frame)} rows written to {out}", file=sys.stderr)
        described += int(frame["caption"].notna().sum())
    for video, folder in zip(videos, _clip_folders(videos, args.out), strict=True):
        try:  # a clip that fails is reported and the others go on
            described += _describe_video(args, video, folder)
        except (OSError, ValueError) as err:
            print(f"error: {video}: {err}", file=sys.stderr)
    return 0 if described else 1


def _clip_folders(videos: list[str], out: str | None) -> list[Path]:
    """Each clip's folder: ``--out`` for a single clip, else ``<out or .>/<stem>-faces``, with
    a number added where two clips share a stem."""
    if len(videos) == 1 and out:
        return [Path(out)]
    folders, taken = [], set()
    for video in videos:
        name, n = f"{Path(video).stem}-faces", 2
        while name in taken:
            name, n = f"{Path(video).stem}-{n}-faces", n + 1
        taken.add(name)
        folders.append(Path(out or ".") / name)
    return folders


def _describe_video(args: argparse.Namespace, video: str, folder: Path) -> int:
    """Describe one clip into ``folder``; the number of faces described."""
    from facecap_lib.describing import describe_video, save

    result = describe_video(
        video, args.checkpoint, fps=args.fps, smooth=args.smooth, detector=args.detector,
        beams=args.beams, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
        progress=sys.stderr.isatty(),
    )  # fmt: skip
    save(result, folder, "json" if args.json or args.format == "json" else "csv")
    seen = int(result.table["caption"].notna().sum())
    print(
        f"{video}: {result.frames} frames sampled at {args.fps:g}/s, {len(result.tracks)} face "
        f"track(s), {seen} faces described at {result.frames_per_second:.2f} frames/s; "
        f"written to {folder}" + ("" if seen else " (no face found in any frame)")
    )
    return seen


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facecap", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    notebooks = commands.add_parser("notebooks", help="execute the tutorial notebooks")
    nb_commands = notebooks.add_subparsers(dest="action", required=True)
    run = nb_commands.add_parser("run", help="convert with jupytext and execute with papermill")
    run.add_argument("names", nargs="*", help="notebook numbers, stems or slugs (default: all)")
    run.add_argument("--smoke", action="store_true", help="CI's fast settings (SMOKE=True)")
    run.add_argument(
        "--force", action="store_true", help="execute even if an up-to-date copy exists"
    )
    run.add_argument(
        "--out", help="folder for executed copies (default: book/chapters, or build/smoke)"
    )
    run.add_argument("--root", help="repository root (default: found from the current folder)")
    run.add_argument("--timeout", type=float, help="seconds one cell may run (default: no limit)")
    run.set_defaults(func=_notebooks_run)
    listing = nb_commands.add_parser("list", help="list the notebooks in order")
    listing.add_argument("--root", help="repository root")
    listing.set_defaults(func=_notebooks_list)

    lab = commands.add_parser(
        "lab",
        help="JupyterLab on the chapters (.py opens as a notebook; the book's work folder)",
    )
    lab.add_argument("--port", type=int, help="default: JupyterLab's (8888, or the next free)")
    lab.add_argument("--token", help="access token (default: JupyterLab draws one and prints it)")
    lab.add_argument("--no-browser", dest="no_browser", action="store_true")
    lab.add_argument(
        "--smoke", action="store_true", help="the smoke work folder (build/work/smoke)"
    )
    lab.add_argument("--root", help="repository root (default: found from the current folder)")
    lab.set_defaults(func=_lab)

    book = commands.add_parser("book", help="the HTML book")
    book_commands = book.add_subparsers(dest="action", required=True)
    build = book_commands.add_parser("build", help="render the executed notebooks (warnings fail)")
    build.add_argument("--book", help="book folder (default: book/ of the repository)")
    build.set_defaults(func=_book_build)

    data = commands.add_parser("data", help="SynthFACS corpora, dataset loaders, curation")
    data_commands = data.add_subparsers(dest="action", required=True)
    synth = data_commands.add_parser(
        "synth", help="write a SynthFACS corpus in a real dataset's format"
    )
    synth.add_argument(
        "--like",
        required=True,
        help="bp4d, disfa, gft, rafau, emotionet, affectnet, rafdb, faceme, several separated "
        "by commas, or all",
    )
    synth.add_argument(
        "--out",
        required=True,
        help="the corpus folder (the dataset root); with several formats, the folder that gets "
        "one subfolder per format",
    )
    synth.add_argument("--subjects", type=int, help="people in a video corpus")
    synth.add_argument("--sequences", type=int, help="videos per person (BP4D tasks)")
    synth.add_argument("--frames", type=int, help="frames per video")
    synth.add_argument("--images", type=int, help="images of a still corpus")
    synth.add_argument("--size", type=int, help="image size in pixels")
    synth.add_argument("--seed", type=int, help="the corpus is a function of this seed")
    synth.add_argument("--jitter", type=float, help="pose/framing/noise variation, 0-1")
    synth.add_argument(
        "--occluder-rate", dest="occluder_rate", type=float, help="share of occluded faces"
    )
    synth.add_argument("--workers", type=int, help="rendering processes (default: all cores)")
    synth.add_argument(
        "--renderer", type=int,
        help="SynthFACS renderer: 2 (the book's, the default) or 3 (shaded per pixel, FACS-sized AUs)",
    )  # fmt: skip
    synth.add_argument("--smoke", action="store_true", help="start from the tiny smoke settings")
    synth.set_defaults(func=_data_synth)
    load = data_commands.add_parser("load", help="load a dataset folder and print its statistics")
    load.add_argument("dataset")
    load.add_argument("root")
    load.add_argument(
        "--lenient", action="store_true", help="skip and count bad rows instead of failing"
    )
    load.add_argument("--out", help="write the face table to this Parquet file")
    load.set_defaults(func=_data_load)
    cur = data_commands.add_parser(
        "curate", help="load, split and sample datasets (the paper's protocol)"
    )
    cur.add_argument("datasets", nargs="+", metavar="DATASET=FOLDER")
    cur.add_argument("--out", required=True, help="Parquet file for the curated face table")
    cur.add_argument(
        "--every", type=int, default=10, help="keep one video frame in this many (+ label changes)"
    )
    cur.add_argument("--test-fraction", dest="test_fraction", type=float, default=0.2)
    cur.add_argument("--seed", type=int, default=0)
    cur.add_argument(
        "--bp4d-folds", dest="bp4d_folds", action="store_true", help="BP4D test = fold part 3"
    )
    cur.add_argument("--lenient", action="store_true")
    cur.set_defaults(func=_data_curate)

    captions = commands.add_parser(
        "captions", help="caption synthesis (stage 1) and Mix/Cat/Exp sets"
    )
    caption_commands = captions.add_subparsers(dest="action", required=True)
    build_captions = caption_commands.add_parser(
        "build", help="caption the default corpus (LLM if FACECAP_LLM_MODEL is set, else offline)"
    )
    build_captions.add_argument("--smoke", action="store_true", help="the smoke corpus")
    build_captions.add_argument(
        "--dry-run", dest="dry_run", action="store_true", help="print the cost estimate only"
    )
    build_captions.set_defaults(func=_captions_build)

    train = commands.add_parser(
        "train",
        help="the three training stages on the default corpus (resumable; torchrun-ready)",
        description="Train one stage of the paper's recipe (or all, in order) on the default "
        "corpus and caption corpus of chapters 2 and 3. Each stage resumes where it stopped and "
        "skips what is finished. Several GPUs: torchrun --nproc-per-node N -m facecap_lib.cli "
        "train STAGE (or accelerate launch -m facecap_lib.cli train STAGE).",
    )
    train.add_argument("stage", choices=["all", *STAGES])
    train.add_argument("--smoke", action="store_true", help="smoke corpus and a few steps")
    train.add_argument(
        "--preset", default="auto", help="tiny, small, ... (auto: small on a GPU, tiny on a CPU)"
    )
    train.add_argument("--init", help="a pre-trained Blip2 captioner: Hugging Face id or folder")
    train.add_argument(
        "--run", type=Path, help="run folder (default: <cache>/runs/<preset>-<settings digest>)"
    )
    train.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    train.add_argument(
        "--foundations",
        help="what a from-scratch preset starts from: shipped (the default where the package "
        "ships them), a folder made by facecap pretrain, or none (random weights)",
    )
    train.add_argument(
        "--seed",
        type=int,
        help="every stage's seed (default: the settings'; 0): another run folder",
    )
    train.add_argument(
        "--parallel", choices=["ddp", "fsdp"],
        help="under torchrun: copy the model (ddp, the default) or shard it (fsdp), every stage",
    )  # fmt: skip
    train.set_defaults(func=_train)

    pretrain = commands.add_parser(
        "pretrain",
        help="pre-train a from-scratch preset's image encoder and language model (foundations)",
        description="Render the SynthFACS pre-training corpus, pre-train the preset's image "
        "encoder on it (on its AU labels by default; --encoder for a self-supervised one) and "
        "its language model on the caption language (--language general: also the general "
        "captions and English prose), and export both with a manifest (sha256, command, commit, device, time, "
        "losses, a linear probe). Every step resumes where it stopped. The tiny preset's "
        "shipped foundations were made with: facecap pretrain --preset tiny --encoder supervised "
        "--out facecap_lib/foundations/tiny",
    )
    pretrain.add_argument("--preset", default="tiny")
    pretrain.add_argument(
        "--encoder", default="supervised", choices=["supervised", "contrastive", "mae"],
        help="supervised (the default, shipped): on the corpus's rendered AU labels; "
        "contrastive (SimCLR on sessions) or mae: without labels",
    )  # fmt: skip
    pretrain.add_argument("--out", type=Path, help="export folder (default: in the work folder)")
    pretrain.add_argument("--faces", type=int, help="pre-training faces (default 100,000)")
    pretrain.add_argument(
        "--renderer", type=int, help="the SynthFACS renderer that draws the corpus (default 2)"
    )
    pretrain.add_argument("--steps", type=int, help="the encoder's optimizer steps")
    pretrain.add_argument(
        "--language", default="captions", choices=["captions", "general"],
        help="what the language model reads: captions (the default, shipped): the expression "
        "captions; general: also the general captions and 20,000 passages of English prose "
        "(5,000 steps), so that the general captioner can write its own kind of caption",
    )  # fmt: skip
    pretrain.add_argument("--smoke", action="store_true", help="a tiny corpus and a few steps")
    pretrain.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    pretrain.set_defaults(func=_pretrain)

    describe = commands.add_parser(
        "describe",
        help="every face of photos: box, caption, the AUs and emotions it names",
        description="Every face of each photo, found (BlazeFace, the Haar cascade as a fallback), "
        "aligned and captioned; its AUs and emotions are read from the caption. A photo without a "
        "face, or a file that cannot be read, gets a row with the reason and the batch goes on; "
        "the exit status is 1 only when no face at all was described.",
    )
    describe.add_argument("photos", nargs="+", help="photos and clips (.mp4, .avi, .mov, ...)")
    describe.add_argument(
        "--checkpoint",
        help="a trained captioner folder (default: the shipped tiny Exp-BLIP, or --captioner)",
    )
    describe.add_argument(
        "--captioner",
        choices=["exp-blip", "au-blip"],
        default="exp-blip",
        help="which shipped captioner, without --checkpoint: Exp-BLIP (AUs and emotions, the "
        "default) or AU-BLIP (AUs only)",
    )
    describe.add_argument("--beams", type=int, default=5, help="beam size (paper: 5)")
    describe.add_argument("--max-new-tokens", dest="max_new_tokens", type=int, default=60)
    describe.add_argument("--sample", action="store_true", help="sample instead of beam search")
    describe.add_argument(
        "--no-crop",
        dest="no_crop",
        action="store_true",
        help="use whole images (no face detection)",
    )
    describe.add_argument(
        "--batch-size", dest="batch_size", type=int, help="images per batch (128 on a GPU, 16 else)"
    )
    describe.add_argument(
        "--decoding",
        help="how the key-value cache is kept (facecap_lib.inference.DECODINGS; the captions are "
        "the same): the beam cache by default",
    )
    describe.add_argument(
        "--format",
        default="text",
        choices=["text", "json", "csv"],
        help="photos: text for reading, JSON lines, or CSV with one column per AU and per emotion "
        "(facecap_lib.describing); clips: CSV files (text, csv) or JSON lines (json)",
    )
    describe.add_argument("--json", action="store_true", help="the same as --format json")
    describe.add_argument(
        "--out",
        help="photos: write to this file instead of the standard output; a clip: its folder "
        "(default ./<clip>-faces; several clips: one folder each inside --out). With photos and "
        "clips together, --out is the clips' and the photos go to the standard output",
    )
    describe.add_argument(
        "--fps", type=float, default=5.0, help="a clip's frames sampled per second (default 5)"
    )
    describe.add_argument(
        "--smooth",
        type=int,
        default=3,
        help="a clip's AUs and emotions: the majority over this many sampled frames (1: none; "
        "default 3)",
    )
    describe.add_argument(
        "--detector",
        default="auto",
        choices=DETECTORS,
        help="auto: BlazeFace, then the Haar cascade where it finds no face",
    )
    describe.set_defaults(func=_describe)

    run = commands.add_parser(
        "run", help="run a project file: curate, captions, the three training stages"
    )
    run.add_argument("project", help="a project file (YAML, see facecap_lib.project)")
    run.add_argument("--stage", help="run only this stage (facecap_lib.runner.STAGES)")
    run.add_argument("--until", help="run every stage up to this one")
    run.add_argument("--dry-run", dest="dry_run", action="store_true", help="print the plan")
    run.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    run.set_defaults(func=_run)

    ship = commands.add_parser(
        "ship-captioners",
        help="train (or reuse) the book's tiny Exp-BLIP and AU-BLIP and store them in the package "
        "for facecap describe, with a manifest",
    )
    ship.add_argument(
        "--out", help="where to write them (default: facecap_lib/captioners/tiny in the package)"
    )
    ship.add_argument(
        "--faces",
        type=int,
        default=400,
        help="held-out faces the manifest's figures are measured on",
    )
    ship.add_argument("--smoke", action="store_true", help="the smoke corpus and a few steps")
    ship.set_defaults(func=_ship_captioners)

    export = commands.add_parser(
        "export-lavis", help="write a trained captioner as a LAVIS Blip2OPT checkpoint (.pth)"
    )
    export.add_argument("checkpoint", help="a trained captioner folder")
    export.add_argument("--out", required=True, help="the .pth file to write")
    export.add_argument(
        "--no-language-model",
        dest="language_model",
        action="store_false",
        help="leave out the frozen OPT, as LAVIS's trainer does",
    )
    export.set_defaults(func=_export_lavis)

    lexicon = commands.add_parser("lexicon", help="the AU and emotion vocabulary")
    lx_commands = lexicon.add_subparsers(dest="action", required=True)
    lx_commands.add_parser("aus", help="print the 27 AUs").set_defaults(func=_lexicon_aus)
    parse = lx_commands.add_parser("parse", help="parse dataset AU strings such as '17+B22+T24'")
    parse.add_argument("codes", nargs="+")
    parse.add_argument("--lenient", action="store_true", help="skip unknown or malformed tokens")
    parse.set_defaults(func=_lexicon_parse)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # as typed: recorded where a command must be reproducible (pretrain)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
