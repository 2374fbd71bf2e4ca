"""``bench typos``: seeded typo'd variants of prompts, printed to read or written as a frozen set.

``bench typos "a photo of a bag" --edits 1 2 --seed 0 1 2`` prints each prompt's variants per budget
and seed, so a user sees what a grid's ``typos`` cells will feed the model before running them.
``bench typos --from grids/data/typo-clean-prompts.txt --attack typos typos-adaptive --edits 1 2 3
--seed 0 --out grids/data/typo-prompts.json`` draws every (attack, budget) set with one seed and
writes the JSON that a grid reads through the attack's ``frozen`` / ``frozen_sha256`` parameters
(the sha256 and the grid lines are printed): AELIF had an LLM write its typos, ours are redrawn
byte for byte from this command. ``python -m bench.typo_sets`` takes the same arguments.

A prompt past the text encoder's 16 tokens is truncated by the embedded models: each such prompt is
marked in the printout, warned about, and counted in the file (``truncated_past_16_tokens``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.errors import BenchError, check_output_file

GENERATOR = "python -m bench.typo_sets"
"""The ``generator`` field of a frozen file; unchanged so that the committed sets redraw byte for byte."""
ADAPTIVE_OPTIONS = ("beam", "candidates")


def typo_attacks(attacks: list[str], budgets: list[dict], params: dict | None = None) -> list:
    """One configured attack per (attack name, budget), bad names and parameters refused as BenchError."""
    from bench.plugins import ATTACKS

    built = []
    for name in attacks:
        if name not in ATTACKS.names() or not name.startswith("typos"):
            raise BenchError(f"typos: {name!r} is not a typos attack; use typos or typos-adaptive")
        attack_class = ATTACKS.get(name)
        own = {k: v for k, v in (params or {}).items() if k not in ADAPTIVE_OPTIONS or name == "typos-adaptive"}
        built += [attack_class(attack_class.make_config({**own, **budget})) for budget in budgets]
    return built


def typo_sets(prompts: list[str], attacks: list[str], budgets: list[dict], seed: int,
              params: dict | None = None) -> dict:
    """The frozen-set document: {frozen_key: {clean prompt: typo'd prompt}} for every attack and
    budget (``{"edits": k}`` or ``{"edits": 0, "rate": r}``), drawn with one seed."""
    check_prompts(prompts)
    sets, truncated = {}, {}
    for attack in typo_attacks(attacks, budgets, params):
        sets[attack.frozen_key()] = dict(zip(prompts, attack(prompts, seed=seed), strict=True))
        truncated[attack.frozen_key()] = attack.truncated
    return {"seed": seed, "generator": GENERATOR, "truncated_past_16_tokens": truncated, "sets": sets}


def check_prompts(prompts: list[str]) -> None:
    if not prompts:
        raise BenchError("typos: the prompt list is empty; give prompts as arguments or --from FILE (one a line)")
    blank = [i for i, prompt in enumerate(prompts, 1) if not prompt.strip()]
    if blank:
        raise BenchError(f"typos: prompt {blank[0]} is empty; remove it or write the prompt")


def read_prompts(args: argparse.Namespace) -> list[str]:
    prompts = list(args.prompts)
    if args.from_file:
        path = Path(args.from_file)
        if not path.is_file():
            raise BenchError(f"typos: --from {path} is not a file; give a text file of prompts, one a line")
        prompts += [line.strip() for line in path.read_text().splitlines() if line.strip()]
    check_prompts(prompts)
    return list(dict.fromkeys(prompts))


def budgets_of(args: argparse.Namespace) -> list[dict]:
    if args.rate is not None:
        bad = [rate for rate in args.rate if not 0 < rate <= 1]
        if bad:
            raise BenchError(f"typos: --rate {bad[0]}: the share of editable letters edited, in (0, 1]")
        return [{"edits": 0, "rate": rate} for rate in args.rate]
    bad = [count for count in args.edits or [] if count < 1]
    if bad:  # edits 0 would mean "use the rate" to the attack's config: here it is a budget of nothing
        raise BenchError(f"typos: --edits {bad[0]}: give 1 or more edits per prompt, or --rate")
    return [{"edits": count} for count in (args.edits or [1])]


def params_of(args: argparse.Namespace) -> dict:
    params: dict = {"words": args.words}
    if args.kinds:
        params["kinds"] = tuple(args.kinds)
    adaptive = {key: getattr(args, key) for key in ADAPTIVE_OPTIONS if getattr(args, key) is not None}
    if adaptive and "typos-adaptive" not in args.attack:
        raise BenchError(f"typos: --{next(iter(adaptive))} is an option of typos-adaptive's search; "
                         "add --attack typos-adaptive or drop it")
    return {**params, **adaptive}


def cmd_typos(args: argparse.Namespace) -> int:
    from bench.measure import edit_distance
    from bench.text_encoder import MAX_TOKENS

    bad_seeds = [seed for seed in args.seed if seed < 0]
    if bad_seeds:
        raise BenchError(f"typos: --seed {bad_seeds[0]}: seeds are whole numbers from 0")
    if args.out and len(args.seed) != 1:
        raise BenchError(f"typos: --out writes a frozen set drawn with one seed, got {len(args.seed)}; give one --seed")
    if args.out:
        check_output_file(args.out)
    prompts, budgets, params = read_prompts(args), budgets_of(args), params_of(args)
    attacks = typo_attacks(args.attack, budgets, params)  # every config checked before anything is drawn
    if args.out or args.json:
        document = typo_sets(prompts, args.attack, budgets, args.seed[0], params) if len(args.seed) == 1 else \
            {str(seed): typo_sets(prompts, args.attack, budgets, seed, params) for seed in args.seed}
        text = json.dumps(document, indent=1, sort_keys=True) + "\n"
        if not args.out:
            print(text, end="")
            return 0
        from bench.assets import sha256_file
        from bench.store import atomic_write_text

        atomic_write_text(Path(args.out), text)
        digest = sha256_file(Path(args.out))
        print(f"wrote {args.out} (sha256 {digest})\nin a grid, with the budget as an axis (edits: [...] or rate: [...]):")
        for name in dict.fromkeys(args.attack):
            print(f"  - {{name: {name}, frozen: {args.out}, frozen_sha256: {digest}}}")
        return 0
    from attacks.typos import token_counts

    for attack in attacks:
        for seed in args.seed:
            print(f"{attack.frozen_key()}  seed {seed}")
            perturbed = attack(prompts, seed=seed)
            for clean, typo, tokens in zip(prompts, perturbed, token_counts(perturbed), strict=True):
                long = f", truncated: {tokens} tokens > {MAX_TOKENS}" if tokens > MAX_TOKENS else ""
                print(f"  {clean}  ->  {typo}  (edit distance {edit_distance(typo, clean)}{long})")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompts", nargs="*", help="prompts (quote each); or --from FILE")
    parser.add_argument("--from", dest="from_file", metavar="FILE", help="a text file of prompts, one a line")
    parser.add_argument("--attack", nargs="+", default=["typos"], help="typos (default) and/or typos-adaptive")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--edits", type=int, nargs="+", help="edits per prompt, one set per value (default 1)")
    budget.add_argument("--rate", type=float, nargs="+", help="or edits per editable letter, in (0, 1]")
    parser.add_argument("--kinds", nargs="+", help="edit kinds: swap delete insert substitute duplicate case "
                                                   "(default: all)")
    parser.add_argument("--words", default="content", help="content (default: not function or caption words) or any")
    parser.add_argument("--beam", type=int, help="typos-adaptive: beam width (default 1, greedy)")
    parser.add_argument("--candidates", type=int, help="typos-adaptive: edits scored per step (default 0, all)")
    parser.add_argument("--seed", type=int, nargs="+", default=[0], help="one or more seeds (default 0)")
    parser.add_argument("--out", metavar="FILE", help="write the frozen set (JSON, one seed) for a grid's frozen:")
    parser.add_argument("--json", action="store_true", help="print the sets as JSON instead of a listing")


def add_typos_command(sub) -> None:
    typos = sub.add_parser("typos", help="seeded typo'd variants of prompts; --out writes a frozen set for grids")
    add_arguments(typos)
    typos.set_defaults(func=cmd_typos)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.typo_sets``: ``bench typos`` without the rest of the command line."""
    import logging

    parser = argparse.ArgumentParser(prog="python -m bench.typo_sets", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return cmd_typos(args)
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
