"""User-facing errors: the CLI prints the message on one line and exits with code 2."""


class BenchError(Exception):
    """A problem with the user's input (config, image, weights, submission) that they can fix.

    The message must say what is wrong and name the fix.
    """

    exit_code = 2


NUMBER_HINT = ("budgets are numbers in [0,1] pixel units and YAML does not compute fractions: write 0.0314 "
               "for 8/255")
DEVICE_HINT = "use cpu, cuda, cuda:N (N counts from 0), mps or auto"


def check_device(name: str) -> str:
    """A ``--device`` value checked against this machine: the device string to use (``auto`` resolved
    to cuda or cpu), or a BenchError naming what is available."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise BenchError(f"--device {name!r} is not a device; {DEVICE_HINT}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise BenchError(f"--device {name}: no CUDA GPU is available on this machine "
                             "(torch.cuda.is_available() is false); use --device cpu, or auto to take a GPU "
                             "when there is one")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise BenchError(f"--device {name}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}; "
                             "pick one of those")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise BenchError(f"--device {name}: Apple's MPS is not available on this machine; use --device cpu")
    elif device.type != "cpu":
        raise BenchError(f"--device {name!r}: device type {device.type!r} is not supported; {DEVICE_HINT}")
    return name


def check_output_folder(path: str, flag: str = "--out") -> None:
    """Refuse, before anything is computed or written, an output folder that cannot be created or written:
    a regular file, a path below a file, or a place that refuses new entries (read-only, /proc)."""
    import os
    import tempfile
    from pathlib import Path

    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise BenchError(f"{flag} {path} is a file, not a folder; name a new or existing folder")
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise BenchError(f"{flag} {path}: {existing} is a file, so no folder can be made below it; "
                         "choose another path")
    try:  # as root, permission bits say little; a real (then removed) entry tells whether the place is writable
        probe = tempfile.mkdtemp(prefix=".bench-write-check-", dir=existing)
        os.rmdir(probe)
    except OSError as err:
        raise BenchError(f"{flag} {path}: cannot write into {existing} ({err.strerror or err}); "
                         "choose a writable folder") from None


def check_output_file(path: str, flag: str = "--out") -> None:
    """Refuse a file to be written that names a folder or lies where nothing can be written."""
    from pathlib import Path

    file = Path(path).expanduser()
    if file.is_dir():
        raise BenchError(f"{flag} {path} is a folder; name the file to write")
    if file.parent.exists() and not file.parent.is_dir():
        raise BenchError(f"{flag} {path}: {file.parent} is a file, so nothing can be written below it; "
                         "choose another path")
    check_output_folder(str(file.parent), flag)


COUNT_OPTIONS = ("n", "batch", "repeats", "cells_per_task")
"""Whole-number options that must be at least 1 wherever a subcommand has them."""
RUN_FOLDER_OPTIONS = {"regress": "out", "verify": "out", "plot": "out"}
FILE_OPTIONS = {"zoo": "out"}


def check_arguments(args) -> None:
    """What the command line says, checked before any subcommand loads or writes anything."""
    if getattr(args, "device", None) is not None:
        args.device = check_device(args.device)
    for option in COUNT_OPTIONS:
        value = getattr(args, option, None)
        if value is not None and value < 1:
            raise BenchError(f"--{option.replace('_', '-')} must be at least 1, got {value}")
    command = getattr(args, "command", None)
    if getattr(args, RUN_FOLDER_OPTIONS.get(command, "-"), None):
        check_output_folder(getattr(args, RUN_FOLDER_OPTIONS[command]))
    if getattr(args, FILE_OPTIONS.get(command, "-"), None):
        check_output_file(getattr(args, FILE_OPTIONS[command]))
