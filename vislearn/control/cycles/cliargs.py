"""The arguments every `vislearn control cycles` command shares: which pair, and its settings."""
from __future__ import annotations

import argparse

from vislearn.common.cli import Parser

from .pairs import CONFIGS, PairConfig, load_pair, pair_from_xml


class PairParser(Parser):
    """Options may come between the pair and its key=value settings (`collect PAIR --out RUN k=v`)."""

    def parse_args(self, args=None, namespace=None):
        return self.parse_intermixed_args(args, namespace)


def add_pair_args(p: argparse.ArgumentParser, positional: bool = True) -> None:
    names = ", ".join(sorted(x.stem for x in CONFIGS.glob("*.yaml") if x.stem != "defaults"))
    what = f"a named pair ({names}) or a pair YAML (or --source-xml and --target-xml), then key=value settings"
    p.add_argument("items", nargs="*", metavar="PAIR [key=value ...]" if positional else "key=value", help=what)
    p.add_argument("--source-xml", default=None, help="a new pair: the source robot's MJCF file")
    p.add_argument("--target-xml", default=None, help="a new pair: the target robot's MJCF file")
    p.add_argument("--task", default="HalfCheetah-v5", help="the gymnasium task both MJCF files run in "
                   "(its reward and observation), with --source-xml/--target-xml (default HalfCheetah-v5)")


def resolve_pair(args: argparse.Namespace, extra: list[str] = ()) -> tuple[PairConfig, str]:
    from vislearn.common.errors import UserError

    names = [i for i in args.items if "=" not in i or i.endswith((".yaml", ".yml"))]
    overrides = [i for i in args.items if i not in names] + list(extra)
    if args.source_xml or args.target_xml:
        if not (args.source_xml and args.target_xml):
            raise UserError("a new pair needs both --source-xml and --target-xml")
        if names:
            raise UserError(f"{names[0]!r}: a pair is named or given as two MJCF files, not both")
        return pair_from_xml(args.source_xml, args.target_xml, args.task, overrides)
    if len(names) != 1:
        raise UserError("which pair? name one (e.g. cheetah_armature3), give a pair YAML, or --source-xml and "
                        "--target-xml" if not names else f"one pair at a time, got {', '.join(names)}")
    return load_pair(names[0], overrides)
