"""The leaderboard subcommands: ``submit``, ``validate``, ``verify`` and ``leaderboard render [--check]``.

``add_leaderboard_commands(subparsers)`` adds them to the ``bench`` parser; each handler takes the
parsed arguments and returns an exit code. A BenchError propagates to ``bench.cli.main``, which prints
it on one line and exits 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.errors import BenchError

DEFAULT_ROOT = "leaderboards"


def cmd_submit(args: argparse.Namespace) -> int:
    from bench.leaderboard.files import shown
    from bench.leaderboard.submit import submit

    path = submit(Path(args.run_dir), args.track, Path(args.root), name=args.name, paper=args.paper,
                  claimed=Path(args.claimed) if args.claimed else None, defense_label=args.defense,
                  force=args.force)
    print(f"wrote {shown(path)}; run `bench leaderboard render` to update README.md and index.html")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from bench.leaderboard.validate import validate_all

    loaded, problems = validate_all(Path(args.path))
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        return BenchError.exit_code
    print(f"ok: {len(loaded)} entr{'y' if len(loaded) == 1 else 'ies'} valid")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from bench.leaderboard.files import shown
    from bench.leaderboard.verify import verify

    record = verify(Path(args.entry), out=Path(args.out) if args.out else None, device=args.device)
    if not record["passed"]:
        failed = record["failures"]
        raise BenchError(f"{shown(Path(args.entry))}: {len(failed)} of {record['checked']} numbers did not "
                         f"reproduce (first: {failed[0]}); marked unverified; fix the claims or resubmit")
    print(f"verified {shown(Path(args.entry))}: {record['checked']} numbers reproduced "
          f"({record['claimed_checked']} of them claimed)")
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from bench.leaderboard.files import shown
    from bench.leaderboard.render import check_renders, write_renders

    if args.action != "render":
        raise BenchError(f"unknown leaderboard action {args.action!r}; use `bench leaderboard render`")
    if args.check:
        check_renders(Path(args.root))
        print(f"{shown(Path(args.root))}: README.md, index.html and the trade-off plots are up to date")
        return 0
    for path in write_renders(Path(args.root)):
        print(f"wrote {shown(path)}")
    return 0


def add_leaderboard_commands(subparsers) -> None:
    submit = subparsers.add_parser("submit", help="write a leaderboard entry from a finished run folder")
    submit.add_argument("run_dir")
    submit.add_argument("--track", required=True, help="the leaderboard track, e.g. vae-protection")
    submit.add_argument("--name", help="entry (and file) name; default: the defense label")
    submit.add_argument("--paper", help="URL of the defense's paper")
    submit.add_argument("--claimed", metavar="FILE.json",
                        help='the paper\'s numbers: {"ATTACK": {"METRIC": number}} (see leaderboards/SCHEMA.md)')
    submit.add_argument("--defense", metavar="LABEL", help="which defense of the run, when it holds several")
    submit.add_argument("--root", default=DEFAULT_ROOT, help="leaderboard folder (default leaderboards)")
    submit.add_argument("--force", action="store_true", help="replace an existing entry of the same name")
    submit.set_defaults(func=cmd_submit)

    validate = subparsers.add_parser("validate", help="check leaderboard entries (schema, names, ranges, sha256)")
    validate.add_argument("path", nargs="?", default=DEFAULT_ROOT,
                          help="an entry, a track folder, or the leaderboard folder (default leaderboards)")
    validate.set_defaults(func=cmd_validate)

    verify = subparsers.add_parser("verify", help="rerun an entry's grid and mark it verified if it reproduces")
    verify.add_argument("entry")
    verify.add_argument("--out", help="keep the rerun in this folder (default: a temporary one)")
    verify.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or auto")
    verify.set_defaults(func=cmd_verify)

    board = subparsers.add_parser("leaderboard", help="render leaderboards/README.md and index.html")
    board.add_argument("action", choices=["render"])
    board.add_argument("--check", action="store_true",
                       help="exit 2 when the committed renders differ from a fresh render")
    board.add_argument("--root", default=DEFAULT_ROOT, help="leaderboard folder (default leaderboards)")
    board.set_defaults(func=cmd_leaderboard)
