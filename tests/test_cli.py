"""The facecap command line calls the same functions the notebooks do."""

import subprocess
import sys
from pathlib import Path

from facecap_lib.cli import main


def test_lexicon_parse(capsys):
    assert main(["lexicon", "parse", "17+B22+T24", "null"]) == 0
    assert capsys.readouterr().out.splitlines() == ["'17+B22+T24': AU17+AU22+AU24", "'null': null"]


def test_lexicon_parse_error_names_token(capsys):
    assert main(["lexicon", "parse", "1+L12X"]) == 1
    assert "malformed AU token 'L12X'" in capsys.readouterr().err


def test_lexicon_parse_lenient(capsys):
    assert main(["lexicon", "parse", "--lenient", "1+32"]) == 0
    assert "skipped '32' (unknown)" in capsys.readouterr().out


def test_lexicon_aus(capsys):
    assert main(["lexicon", "aus"]) == 0
    out = capsys.readouterr().out
    assert "stick tongue out" in out and "sticks tongue out" in out and len(out.splitlines()) == 29


def test_notebooks_list(capsys, repo):
    assert main(["notebooks", "list", "--root", str(repo)]) == 0
    assert "notebooks/01_au_lexicon.py" in capsys.readouterr().out.splitlines()


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "facecap"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "notebooks" in result.stdout


def test_captions_build(capsys, monkeypatch):
    monkeypatch.delenv("FACECAP_LLM_MODEL", raising=False)
    assert main(["captions", "build", "--smoke", "--dry-run"]) == 0
    assert "offline describer: no calls, no cost" in capsys.readouterr().out
    assert main(["captions", "build", "--smoke"]) == 0
    out = capsys.readouterr().out
    assert "exp:" in out and "written to" in out


def test_captions_dry_run_with_an_llm_prices_without_calling(capsys, monkeypatch):
    monkeypatch.setenv("FACECAP_LLM_MODEL", "gpt-4o-mini")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens: no call
    assert main(["captions", "build", "--smoke", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "AU captions:" in out and "calls to make" in out
    assert "fusion: up to" in out and "known once those are" in out


def test_data_synth_draws_with_the_renderer_asked_and_refuses_to_mix(capsys, tmp_path):
    out = tmp_path / "rafau"
    args = ["data", "synth", "--like", "rafau", "--out", str(out), "--images", "3", "--size", "32"]
    args += ["--workers", "1"]
    assert main([*args, "--renderer", "3"]) == 0
    assert '"renderer": 3' in (out / "synthfacs.json").read_text()
    assert main(args) == 1  # renderer 2 into renderer 3's folder
    assert "its images were drawn with {'renderer': 3" in capsys.readouterr().err
    assert main([*args[:5], str(tmp_path / "r0"), *args[6:], "--renderer", "0"]) == 1
    assert "unknown renderer 0" in capsys.readouterr().err  # refused, not drawn by the default
