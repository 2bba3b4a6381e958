"""``facecap``: the command line. Each subcommand calls the same library function a notebook calls."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _notebooks_run(args: argparse.Namespace) -> int:
    from facecap_lib.notebooks import NotebookExecutionError, run_notebooks

    try:
        run_notebooks(
            args.names,
            smoke=args.smoke,
            output_dir=args.out,
            force=args.force,
            root=args.root,
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

    book = commands.add_parser("book", help="the HTML book")
    book_commands = book.add_subparsers(dest="action", required=True)
    build = book_commands.add_parser("build", help="render the executed notebooks (warnings fail)")
    build.add_argument("--book", help="book folder (default: book/ of the repository)")
    build.set_defaults(func=_book_build)

    lexicon = commands.add_parser("lexicon", help="the AU and emotion vocabulary")
    lx_commands = lexicon.add_subparsers(dest="action", required=True)
    lx_commands.add_parser("aus", help="print the 27 AUs").set_defaults(func=_lexicon_aus)
    parse = lx_commands.add_parser("parse", help="parse dataset AU strings such as '17+B22+T24'")
    parse.add_argument("codes", nargs="+")
    parse.add_argument("--lenient", action="store_true", help="skip unknown or malformed tokens")
    parse.set_defaults(func=_lexicon_parse)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
