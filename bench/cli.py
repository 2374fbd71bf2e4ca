"""The ``bench`` command line. Heavy libraries are imported inside the subcommands that need them."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from bench.errors import BenchError, check_arguments, check_output_folder

log = logging.getLogger("bench")


def cmd_ls(args: argparse.Namespace) -> int:
    from bench.plugins import REGISTRIES

    kinds = [args.kind] if args.kind else list(REGISTRIES)
    for kind in kinds:
        registry = REGISTRIES[kind]
        print(f"{kind}:")
        for name in registry.names():
            print(f"  {name:<16} {registry.summary(name)}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from bench.grid import load_grid
    from bench.runner import Runner, RunOptions
    from bench.shards import Shard
    from bench.tables import parse_columns, render

    if args.dry_run:
        _, cells = load_grid(args.grid)
        binder = Runner(args.out or ".", RunOptions(device=args.device, dtype=args.dtype, quiet=True))
        for cell in map(binder.bind, cells):  # the keys a run would store the cells under
            print(f"{cell.key}  {cell.defense.label} x {cell.attack.label} [{cell.threat_model}] "
                  f"({cell.scenario.label}) eps={cell.eps:.4g} n={cell.data.n} seed={cell.seed}")
        return 0
    out = args.out or str(Path("runs") / Path(args.grid).stem)
    check_output_folder(out)
    columns = parse_columns(args.columns)
    options = RunOptions(device=args.device, dtype=args.dtype, quiet=args.quiet, save_images=args.save_images,
                         force=args.force)
    shard = Shard.parse(args.shard) if args.shard else None
    if not args.stale_after > 0:
        raise BenchError(f"--stale-after {args.stale_after}: give a positive number of seconds (default 600)")
    if args.executor == "ray":
        if shard is not None:
            raise BenchError("--shard and --executor ray do not combine: Ray spreads the whole grid; drop one")
        from bench.ray_executor import run_on_ray

        summaries = run_on_ray(args.grid, out, options, address=args.address, cells_per_task=args.cells_per_task,
                               num_gpus=args.num_gpus, stale_after=args.stale_after)
    else:
        summaries = Runner(out, options, stale_after=args.stale_after).run_grid(args.grid, shard)
    print(render(summaries, args.format, columns))
    log.info("results in %s", out)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from bench.status import cell_states, render_status

    print(render_status(cell_states(args.run_dir, args.stale_after)))
    return 0


def cmd_table(args: argparse.Namespace) -> int:
    from bench.runner import load_run
    from bench.tables import parse_columns, render

    columns = parse_columns(args.columns)
    print(render(load_run(args.run_dir), args.format, columns))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from bench.compare import compare, load
    from bench.tables import parse_columns

    columns = parse_columns(args.columns)
    print(compare(load(args.run_a), load(args.run_b), args.run_a, args.run_b, columns))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from bench.plots import plot_run

    for path in plot_run(args.run_dir, args.out, args.metric):
        print(path)
    return 0


def cmd_regress(args: argparse.Namespace) -> int:
    import datetime
    import tempfile

    from bench import regress
    from bench.provenance import git_revision
    from bench.runner import Runner, RunOptions

    baseline_path = Path(args.baseline)
    reason = (args.reason or "").strip()
    if args.reason is not None and not args.update:
        raise BenchError("--reason goes with --update (it is recorded in the baseline's history)")
    if "\n" in reason:
        raise BenchError("--reason must be one line")
    stored = None if args.update and not baseline_path.exists() else regress.load_baseline_file(baseline_path)
    options = RunOptions(device=args.device, quiet=args.quiet)
    with tempfile.TemporaryDirectory(prefix="bench-regress-") as tmp:
        runner = Runner(args.out or tmp, options)
        runner.run_grid(args.grid)
        measured = regress.numbers(runner.run)
    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    if stored is None:
        entry = regress.history_entry(None, reason or "first baseline", git_revision(), date)
        regress.write_baseline(baseline_path, args.grid, measured, [entry])
        print(f"wrote a new baseline of {len(measured)} numbers to {baseline_path}")
        return 0
    comparison = regress.compare(stored["numbers"], measured)
    print(regress.report(comparison, show_all=args.verbose))
    total = len(comparison.changes) + len(comparison.missing)
    if comparison.ok:
        print(f"ok: {total} numbers checked, none changed beyond tolerance"
              + ("; baseline kept as it is" if args.update else ""))
        return 0
    if not args.update:
        print(f"error: {len(comparison.changed) + len(comparison.missing) + len(comparison.new)} of {total} "
              f"numbers changed beyond tolerance ({comparison.summary()}); changes in either direction fail "
              "(a weaker attack looks like a more robust defense): fix the cause, or if the change is "
              "intended, rerun with --update --reason \"one line: why\"", file=sys.stderr)
        return 1
    if not reason:
        raise BenchError(f"{comparison.summary()}: --update needs --reason \"one line: why the numbers changed\"; "
                         "it is recorded in the baseline's history with the commit")
    history = [*stored.get("history", []), regress.history_entry(comparison, reason, git_revision(), date)]
    regress.write_baseline(baseline_path, args.grid, measured, history)
    print(f"updated {baseline_path} ({comparison.summary()}); recorded in its history with the reason")
    return 0


def cmd_zoo(args: argparse.Namespace) -> int:
    from bench import zoo

    if args.action == "ls":
        for name, entry in zoo.manifest().items():
            size = sum((zoo.ZOO_DIR / entry["path"] / f).stat().st_size for f in entry["files"])
            weights = next(f for f in entry["files"] if f.endswith(".safetensors"))
            print(f"{name:<12} {entry.get('class', '')}  {size / 1e6:.2f} MB  sha256 "
                  f"{entry['files'][weights][:16]}...  data: {entry.get('trained_on', '')}")
            if entry.get("quality"):
                print(f"{'':<12} quality: {json.dumps(entry['quality'])}")
        return 0
    if args.action == "verify":
        results = zoo.verify_all()
        for name, status in results.items():
            print(f"{name:<12} {status}")
        if not results:
            raise BenchError("the zoo manifest is empty; rebuild models with `bench zoo train NAME`")
        return 0 if all(s == "ok" for s in results.values()) else 2
    if args.action == "eval":
        from bench.zoo.evaluate import evaluate

        result = evaluate(args.name, args.n)
        if args.json:
            print(json.dumps(result))
        else:
            for key, value in result.items():
                interval = isinstance(value, dict) and "low" in value
                print(f"{key:<34} {value['value']:.4g} [{value['low']:.4g}, {value['high']:.4g}]" if interval
                      else f"{key:<34} {json.dumps(value) if isinstance(value, dict) else value}")
        return 0
    if args.action == "show":
        from bench.zoo.show import show

        if not args.name:
            raise BenchError("bench zoo show NAME: name a model from `bench zoo ls`")
        print(show(args.name, args.out or f"{args.name}-samples.png"))
        return 0
    if args.action == "train":
        from bench.zoo.builders import train

        print(json.dumps(train(args.name, quiet=args.quiet, device=args.device), indent=2))
        return 0
    if args.action == "fragility":
        from bench.zoo.fragility import DEFAULT_EPS, FragilityConfig, format_table, fragility

        if not args.name:
            raise BenchError("bench zoo fragility NAME: a zoo autoencoder, a diffusers AutoencoderKL folder or hub id")
        eps = tuple(e / 255 for e in args.eps) if args.eps else DEFAULT_EPS
        try:
            config = FragilityConfig(pairs=args.pairs, eps=eps, steps=args.steps, size=args.size,
                                     photoguard=not args.no_photoguard)
        except ValueError as err:
            raise BenchError(f"zoo fragility: {err}") from None
        result = fragility(args.name, config, device=args.device)
        print(json.dumps(result) if args.json else format_table(result))
        return 0
    raise BenchError(f"unknown zoo action {args.action!r}")


def cmd_perf(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from bench.perf import attack_speedups, grid_wall_times, machine, peak_rss_mb, run_perf

    if args.attack_steps < 0:
        raise BenchError(f"--attack-steps must be 0 (skip the comparison) or more, got {args.attack_steps}")
    report: dict = {"machine": machine(), "dtype": args.dtype,
                    "results": run_perf(batch=args.batch, repeats=args.repeats, device=args.device, dtype=args.dtype)}
    if args.attack_steps:
        report["attacks"] = attack_speedups(args.batch, args.attack_steps, args.device)
    report["peak_rss_mb"] = peak_rss_mb()
    if args.grid:
        report["grid"] = grid_wall_times(args.grid, args.device)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"machine: {report['machine']}, dtype {args.dtype}")
    print(tabulate(report["results"], headers="keys", tablefmt="github"))
    if "attacks" in report:
        print("\nattacks, batched against a per-image loop (the reference code's structure):")
        print(tabulate(report["attacks"], headers="keys", tablefmt="github"))
    print(f"\npeak RSS of this process: {report['peak_rss_mb']} MB")
    if "grid" in report:
        grid = report["grid"]
        print(f"{grid['grid']}: cold {grid['cold_s']} s, warm {grid['warm_s']} s, peak RSS {grid['peak_rss_mb']} MB")
    return 0


def cmd_assets(args: argparse.Namespace) -> int:
    from bench.assets import fetch_all, sha256_file

    for name, path in fetch_all().items():
        print(f"{name:<14} {path}  sha256 {sha256_file(path)[:16]}...")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    parser.add_argument("--quiet", action="store_true", help="no progress bars, warnings only")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    ls = sub.add_parser("ls", help="list registered plugins")
    ls.add_argument("kind", nargs="?", choices=["attacks", "defenses", "metrics", "scenarios"])
    ls.set_defaults(func=cmd_ls)

    run = sub.add_parser("run", help="run a grid file (resumable) and print its table")
    run.add_argument("grid")
    run.add_argument("--out", help="run folder (default runs/<grid name>)")
    run.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or auto")
    run.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    run.add_argument("--format", default="md", choices=["md", "csv", "json", "latex"])
    run.add_argument("--save-images", action="store_true", help="write clean/attacked/reconstructed PNGs per cell")
    run.add_argument("--force", action="store_true", help="allow a different grid in an existing run folder")
    run.add_argument("--dry-run", action="store_true", help="validate the grid and list its cells")
    run.add_argument("--columns", metavar="all|NAME,NAME", help="md/latex: every column (all) or these (e.g. "
                     "psnr,lpips); default: per scenario its headline columns; csv/json hold everything")
    run.add_argument("--shard", help="i/n: run only the i-th of n deterministic parts of the grid (Slurm arrays, "
                                     "several machines sharing --out)")
    run.add_argument("--stale-after", type=float, default=600.0, metavar="SECONDS",
                     help="take over a cell whose worker has not signalled for this long (default 600)")
    run.add_argument("--executor", choices=["local", "ray"], default="local",
                     help="ray: cells as Ray tasks (pip install -e '.[ray]')")
    run.add_argument("--address", help="--executor ray: the cluster to join (default: start a local one)")
    run.add_argument("--cells-per-task", type=int, default=1, help="--executor ray: cells per Ray task")
    run.add_argument("--num-gpus", type=float, default=0.0, help="--executor ray: GPUs each task asks for")
    run.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS)
    run.set_defaults(func=cmd_run)

    status = sub.add_parser("status", help="done / running / stale / failed / pending, per cell of a run folder")
    status.add_argument("run_dir")
    status.add_argument("--stale-after", type=float, default=600.0, metavar="SECONDS")
    status.set_defaults(func=cmd_status)

    table = sub.add_parser("table", help="print the table of a run folder")
    table.add_argument("run_dir")
    table.add_argument("--format", default="md", choices=["md", "csv", "json", "latex"])
    table.add_argument("--columns", metavar="all|NAME,NAME", help="md/latex: every column (all) or these (e.g. "
                       "psnr,lpips); default: per scenario its headline columns; csv/json hold everything")
    table.set_defaults(func=cmd_table)

    compare = sub.add_parser("compare", help="two runs side by side: the cells both hold, the difference, and "
                                             "whether the intervals overlap")
    compare.add_argument("run_a")
    compare.add_argument("run_b")
    compare.add_argument("--columns", metavar="all|NAME,NAME",
                         help="every metric (all) or these; default: per scenario its headline columns")
    compare.set_defaults(func=cmd_compare)

    plot = sub.add_parser("plot", help="damage-vs-eps (poisoning: -vs-count) curves and example images (PNG)")
    plot.add_argument("run_dir")
    plot.add_argument("--out", help="folder for the PNGs (default RUN_DIR/plots)")
    plot.add_argument("--metric", action="append", help="metric to plot against eps or poison count (repeatable)")
    plot.set_defaults(func=cmd_plot)

    regress = sub.add_parser("regress", help="run a grid and fail when a number regresses against a baseline")
    regress.add_argument("grid")
    regress.add_argument("--baseline", required=True, help="baseline JSON (written by --update)")
    regress.add_argument("--update", action="store_true",
                         help="accept the measured numbers as the new baseline (needs --reason when any changed)")
    regress.add_argument("--reason", help="with --update: one line saying why the numbers changed (recorded with "
                                          "the commit in the baseline's history)")
    regress.add_argument("--out", help="keep the run in this folder (default: a temporary one)")
    regress.add_argument("--device", default="cpu")
    regress.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS)
    regress.set_defaults(func=cmd_regress)

    zoo = sub.add_parser("zoo", help="the embedded model zoo")
    zoo.add_argument("action", choices=["ls", "verify", "train", "eval", "show", "fragility"])
    zoo.add_argument("name", nargs="?")
    zoo.add_argument("--n", type=int, default=None, help="eval: images or generations (each model has a default)")
    zoo.add_argument("--json", action="store_true", help="eval, fragility: print one JSON object")
    zoo.add_argument("--device", default="cpu", help="train: cpu or cuda, where the recipe allows it")
    zoo.add_argument("--out", help="show: the PNG to write (default NAME-samples.png)")
    zoo.add_argument("--steps", type=int, default=500, help="fragility: optimisation steps (nightshade-release: 500)")
    zoo.add_argument("--pairs", type=int, default=16, help="fragility: seeded image pairs of different classes")
    zoo.add_argument("--eps", type=float, nargs="+", help="fragility: budgets in 1/255 (default 4 8 16)")
    zoo.add_argument("--size", type=int, help="fragility: input size (default the model's sample_size)")
    zoo.add_argument("--no-photoguard", action="store_true", help="fragility: skip PhotoGuard's latent shift")
    zoo.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS)
    zoo.set_defaults(func=cmd_zoo)

    perf = sub.add_parser("perf", help="throughput of the hot paths on this machine (see BENCHMARKS.md)")
    perf.add_argument("--batch", type=int, default=16)
    perf.add_argument("--repeats", type=int, default=3)
    perf.add_argument("--device", default="cpu")
    perf.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    perf.add_argument("--attack-steps", type=int, default=20,
                      help="steps of each attack in the batched vs per-image comparison (0 skips it)")
    perf.add_argument("--grid", help="also time this grid cold and warm, with its peak memory")
    perf.add_argument("--json", action="store_true")
    perf.set_defaults(func=cmd_perf)

    assets = sub.add_parser("assets", help="fetch and convert the real LPIPS and FID Inception weights")
    assets.add_argument("action", choices=["fetch"])
    assets.set_defaults(func=cmd_assets)

    from bench.leaderboard.cli import add_leaderboard_commands

    add_leaderboard_commands(sub)
    from bench.typo_sets import add_typos_command

    add_typos_command(sub)
    from bench.zoo.denoiser_command import add_train_denoiser_command

    add_train_denoiser_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        check_arguments(args)  # --device, --out, counts: before anything loads or writes
        return args.func(args)
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
