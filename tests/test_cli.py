import subprocess
import sys

import pytest

from harness.cli.main import build_parser, main


def _leaf_commands() -> list[list[str]]:
    """Every command the CLI has (group and subcommand), read from the parser itself."""
    import argparse

    found = []

    def walk(parser, prefix):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            found.append(prefix)
            return
        for name, sub in subs[0].choices.items():
            walk(sub, [*prefix, name])

    walk(build_parser(), [])
    return found


COMMANDS = _leaf_commands()


def test_the_help_test_sees_every_command():
    names = {" ".join(c) for c in COMMANDS}
    assert len(COMMANDS) >= 20 and {"data synth", "train", "eval", "gate", "human make"} <= names


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_command_has_help_with_an_example(cmd, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(cmd + ["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert ("example:" in out or "examples:" in out) and f"stackgan-bench {' '.join(cmd)}" in out


def test_top_level_help_lists_groups_and_examples(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "data" in out and "text" in out and "examples:" in out


def test_group_without_subcommand_shows_its_help(capsys):
    assert main(["data"]) == 2
    assert "synth" in capsys.readouterr().out


def test_user_error_is_one_line_without_traceback(tmp_path):
    existing = tmp_path / "exists"
    existing.mkdir()
    proc = subprocess.run([sys.executable, "-m", "harness.cli.main", "data", "synth", "--out",
                           str(existing)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (f"stackgan-bench: error: {existing}: already exists; choose "
                                   "another --out or pass --overwrite")


def test_synth_cli_writes_a_dataset(tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["data", "synth", "--out", str(out), "--classes", "4", "--per-class", "2",
                 "--size", "64", "--workers", "1"]) == 0
    assert "8 images of 4 species (3 train / 1 test classes)" in capsys.readouterr().out
    assert (out / "manifest.json").exists()


def test_parser_defaults_come_from_the_api_options():
    from harness.data.synthbirds.build import SynthOptions

    args = build_parser().parse_args(["data", "synth", "--out", "x"])
    d = SynthOptions()
    assert (args.classes, args.per_class, args.size, args.seed) == (d.classes, d.per_class, d.size, d.seed)


def test_decide_options_are_checked_before_any_work(capsys):
    assert main(["reproduce", "--preset", "smoke", "--budget", "1"]) == 2
    assert "go with --decide" in capsys.readouterr().err
    assert main(["reproduce", "--preset", "smoke", "--decide", "--max-seeds", "1"]) == 2
    assert "at least 2" in capsys.readouterr().err
