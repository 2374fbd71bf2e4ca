"""Frozen typo'd prompt sets: ``python -m bench.typo_sets --from PROMPTS.txt --attack typos typos-adaptive
--edits 1 2 3 --seed 0 --out grids/data/typo-prompts.json`` draws every (attack, edits) set of the
prompts (one a line) with one seed and writes them as JSON, which a grid reads through the attack's
``frozen`` / ``frozen_sha256`` parameters (the sha256 is printed). Without ``--out`` it prints them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.errors import BenchError


def typo_sets(prompts: list[str], attacks: list[str], edits: list[int], seed: int,
              params: dict | None = None) -> dict:
    from bench.plugins import ATTACKS

    if not prompts:
        raise BenchError("typos: the prompt list is empty; give prompts as arguments or --from FILE (one a line)")
    sets, truncated = {}, {}
    for name in attacks:
        if name not in ATTACKS.names() or not name.startswith("typos"):
            raise BenchError(f"typo sets: {name!r} is not a typos attack; use typos or typos-adaptive")
        for count in edits:
            attack_class = ATTACKS.get(name)
            attack = attack_class(attack_class.make_config({**(params or {}), "edits": count}))
            sets[attack.frozen_key()] = dict(zip(prompts, attack(prompts, seed=seed), strict=True))
            truncated[attack.frozen_key()] = attack.truncated
    return {"seed": seed, "generator": "python -m bench.typo_sets", "truncated_past_16_tokens": truncated, "sets": sets}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.typo_sets", description=__doc__.split("\n\n")[0])
    parser.add_argument("prompts", nargs="*")
    parser.add_argument("--from", dest="from_file", help="a text file of prompts, one a line")
    parser.add_argument("--attack", nargs="+", default=["typos"])
    parser.add_argument("--edits", type=int, nargs="+", default=[1])
    parser.add_argument("--kinds", nargs="+", help="edit kinds (default: all)")
    parser.add_argument("--words", default="content", help="content (default) or any")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the sets here (JSON)")
    args = parser.parse_args(argv)
    try:
        prompts = list(args.prompts)
        if args.from_file:
            path = Path(args.from_file)
            if not path.is_file():
                raise BenchError(f"typo sets: {path} is not a file; give a text file of prompts, one a line")
            prompts += [line.strip() for line in path.read_text().splitlines() if line.strip()]
        params = {"words": args.words, **({"kinds": tuple(args.kinds)} if args.kinds else {})}
        document = typo_sets(prompts, args.attack, args.edits, args.seed, params)
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    text = json.dumps(document, indent=1, sort_keys=True) + "\n"
    if not args.out:
        print(text, end="")
        return 0
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    from bench.assets import sha256_file

    print(f"wrote {args.out} (sha256 {sha256_file(Path(args.out))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
