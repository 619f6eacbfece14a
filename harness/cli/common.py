"""Small helpers shared by the CLI group modules."""

from __future__ import annotations

import argparse


def add_group(sub, name: str, help_text: str) -> argparse._SubParsersAction:
    group = sub.add_parser(name, help=help_text, description=help_text)
    group.set_defaults(group_parser=group)
    return group.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND")


def add_command(group_sub, name: str, help_text: str, example: str) -> argparse.ArgumentParser:
    return group_sub.add_parser(
        name, help=help_text, description=help_text, epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter)

