"""Inputs that used to end in a traceback (exit 1), a misleading hint or a silent misreading (issue 9).

Each must give exactly one ``error:`` line that names the fix, exit code 2, and leave no run folder.
The CLI runs in-process (``bench.cli.main``) to stay fast; the data are tiny and the attacks model-free
wherever no model is needed.
"""

from __future__ import annotations

import json
import math
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from bench.cli import main
from bench.errors import BenchError

BASE = {"defenses": ["vae-kl"], "attacks": ["noise"], "metrics": ["psnr"], "data": {"n": 2}}


def bench(capsys, *args: str) -> tuple[int, list[str]]:
    code = main(["--quiet", *args])
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def assert_refused(code: int, lines: list[str], fragment: str, out: Path | None = None) -> None:
    errors = [line for line in lines if line.startswith("error: ")]
    assert code == 2, lines
    assert len(errors) == 1 and "\n" not in errors[0], lines
    assert fragment in errors[0], errors[0]
    if out is not None:
        assert not out.exists(), "a refused run must not leave a run folder"


def write_grid(folder: Path, **changes) -> Path:
    path = folder / "grid.yaml"
    path.write_text(yaml.safe_dump({**BASE, **changes}))
    return path


def write_png16(path: Path, array: np.ndarray) -> None:
    """A 16-bit PNG written byte by byte (Pillow cannot write 16-bit colour): grayscale for (H, W)."""
    array = np.asarray(array, dtype=">u2")
    height, width = array.shape[:2]
    channels = 1 if array.ndim == 2 else array.shape[2]
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + array[row].tobytes() for row in range(height))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, color_type,
                                                                      0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def image_folder(folder: Path, count: int = 2) -> Path:
    folder.mkdir()
    for i in range(count):
        Image.new("RGB", (32, 32), (10 * i, 20, 30)).save(folder / f"{i}.png")
    return folder


# --- grid contents: (name, changes to BASE, fragment of the error line) ---------------------------------
GRID_CASES = [
    ("defense model is a number", {"defenses": [{"name": "vae", "model": 5}]},
     "parameter 'model' must be a string"),
    ("defense model is a list", {"defenses": [{"name": "vae", "model": ["a", "b"]}]},
     "parameter 'model' must be a string"),
    ("metric model is a number", {"metrics": [{"name": "clip-sim", "model": 5}]},
     "parameter 'model' must be a string"),
    ("metric model is a list", {"metrics": [{"name": "clip-sim", "model": ["a", "b"]}]},
     "parameter 'model' must be a string"),
    ("data.path is a number", {"data": {"dataset": "folder", "path": 5, "n": 2}}, "data: path must be a string"),
    ("lpips_net resnet on the lpips metric", {"metrics": [{"name": "lpips", "net": "resnet"}]},
     "use 'alex' or 'vgg'"),
    ("lpips_net resnet on pgd-encoder", {"attacks": [{"name": "pgd-encoder", "lpips_net": "resnet"}]},
     "use 'alex' or 'vgg'"),
    ("lpips_net resnet on glaze-like", {"attacks": [{"name": "glaze-like", "lpips_net": "resnet"}],
                                         "scenario": "img2img-edit"}, "use 'alex' or 'vgg'"),
    ("n is a boolean", {"data": {"n": True}}, "n must be a positive whole number, got True"),
    ("n set to a boolean by an override", {"overrides": [{"match": {}, "set": {"n": True}}]},
     "n must be a positive whole number, got True"),
    ("eps axis '8/255' (a string)", {"eps": ["8/255"]}, "is not a number"),
    ("eps axis NaN", {"eps": [math.nan]}, "is not a number"),
    ("attack eps '8/255' (a string)", {"attacks": [{"name": "noise", "eps": "8/255"}]},
     "YAML does not compute fractions: write 0.0314"),
    ("override eps '8/255'", {"overrides": [{"match": {}, "set": {"eps": "8/255"}}]},
     "YAML does not compute fractions"),
    ("a parameter named by a number", {"attacks": [{"name": "noise", 5: 1}]}, "unknown parameter 5"),
    ("defenses: a bare number", {"defenses": 5}, "each entry must be a name or a mapping"),
    ("seeds: [] (said 'every cell is excluded')", {"seeds": []}, "`seeds:` is empty"),
    ("scenarios: [] (said 'every cell is excluded')", {"scenarios": []}, "`scenarios:` is empty"),
    ("override match: a list", {"overrides": [{"match": ["noise"], "set": {"n": 2}}]},
     "needs `match:` and `set:` mappings"),
    ("seed past torch's 64-bit generator", {"seed": 2**63}, "seed must be at most 4294967295"),
    ("n: 1 with fid", {"data": {"n": 1}, "metrics": ["psnr", "fid"]}, "fid compares two sets of images and needs n"),
    ("n: 1 by an override with kid", {"metrics": ["kid"], "overrides": [{"match": {}, "set": {"n": 1}}]},
     "kid compares two sets of images and needs n"),
]


@pytest.mark.parametrize("changes, fragment", [case[1:] for case in GRID_CASES], ids=[c[0] for c in GRID_CASES])
def test_bad_grid_values_are_refused(changes, fragment, tmp_path, capsys):
    out = tmp_path / "run"
    code, lines = bench(capsys, "run", str(write_grid(tmp_path, **changes)), "--out", str(out))
    assert_refused(code, lines, fragment, out)


# --- grid files that are not YAML text ----------------------------------------------------------------
GRID_FILES = [
    ("binary file", lambda path: path.write_bytes(bytes(range(256)) * 4), "is not a UTF-8 text file"),
    ("a folder", lambda path: path.mkdir(), "is not a file"),
    ("nested 100,000 deep", lambda path: path.write_text("defenses: " + "[" * 100_000 + "]" * 100_000 + "\n"),
     "nested too deeply"),
    ("!!binary value", lambda path: path.write_text(yaml.safe_dump(BASE) + "description: !!binary aGVsbG8=\n"),
     "description is a YAML binary"),
    ("!!set value", lambda path: path.write_text(yaml.safe_dump(BASE) + "description: !!set {a, b}\n"),
     "description is a YAML set"),
]


@pytest.mark.parametrize("write, fragment", [case[1:] for case in GRID_FILES], ids=[c[0] for c in GRID_FILES])
def test_grid_files_that_are_not_yaml_text_are_refused(write, fragment, tmp_path, capsys):
    path, out = tmp_path / "grid.yaml", tmp_path / "run"
    write(path)
    code, lines = bench(capsys, "run", str(path), "--out", str(out))
    assert_refused(code, lines, fragment, out)


def test_a_yaml_date_is_kept_as_its_iso_text(tmp_path, capsys):
    path, out = tmp_path / "grid.yaml", tmp_path / "run"
    path.write_text(yaml.safe_dump(BASE) + "description: 2024-01-01\n")
    code, lines = bench(capsys, "run", str(path), "--out", str(out))
    assert code == 0, lines
    assert json.loads((out / "run.json").read_text())["grid"]["description"] == "2024-01-01"


def test_a_single_attack_mapping_is_one_attack_not_its_keys(tmp_path, capsys):
    path = write_grid(tmp_path, attacks={"name": "noise", "eps": 0.1})
    code = main(["--quiet", "run", str(path), "--dry-run"])
    listing = capsys.readouterr().out
    assert code == 0 and "vae-kl x noise" in listing and "eps=0.1 " in listing


# --- devices ---------------------------------------------------------------------------------------------
@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def one_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


DEVICE_CASES = [
    ("cuda without a GPU", "no_gpu", "cuda", "no CUDA GPU is available"),
    ("cuda:0 without a GPU", "no_gpu", "cuda:0", "use --device cpu"),
    ("cuda:3 with one GPU", "one_gpu", "cuda:3", "cuda:0 to cuda:0"),
    ("gpu0", "no_gpu", "gpu0", "is not a device; use cpu, cuda, cuda:N"),
    ("meta", "no_gpu", "meta", "device type 'meta' is not supported"),
]


@pytest.mark.parametrize("machine, device, fragment", [c[1:] for c in DEVICE_CASES], ids=[c[0] for c in DEVICE_CASES])
def test_run_refuses_a_device_this_machine_lacks(machine, device, fragment, request, tmp_path, capsys):
    request.getfixturevalue(machine)
    out = tmp_path / "run"
    code, lines = bench(capsys, "run", str(write_grid(tmp_path)), "--out", str(out), "--device", device)
    assert_refused(code, lines, fragment, out)


@pytest.mark.parametrize("args", [
    ["regress", "GRID", "--baseline", "BASELINE"],
    ["verify", "leaderboards/vae-protection/vae-kl.json"],
    ["zoo", "train", "vae-kl"],
    ["zoo", "ls"],
    ["perf"],
], ids=lambda args: args[0] + (" " + args[1] if args[0] == "zoo" else ""))
@pytest.mark.parametrize("device, fragment", [("gpu0", "is not a device"), ("cuda", "no CUDA GPU is available")])
def test_other_subcommands_refuse_a_bad_device(args, device, fragment, no_gpu, tmp_path, capsys):
    args = [a.replace("GRID", str(write_grid(tmp_path))).replace("BASELINE", str(tmp_path / "b.json")) for a in args]
    code, lines = bench(capsys, *args, "--device", device)
    assert_refused(code, lines, fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.yaml"]


def test_run_options_refuse_a_bad_device_in_code():
    from bench.runner import RunOptions

    with pytest.raises(BenchError, match="is not a device"):
        RunOptions(device="gpu0")


# --- output folders --------------------------------------------------------------------------------------
OUT_CASES = [
    ("--out is a regular file", lambda tmp: tmp / "taken", "is a file, not a folder"),
    ("--out below a regular file", lambda tmp: tmp / "taken" / "run", "is a file, so no folder can be made"),
    ("--out under /proc", lambda tmp: Path("/proc/bench-no-such-dir/run"), "cannot write into /proc"),
]


@pytest.mark.parametrize("command", ["run", "regress"])
@pytest.mark.parametrize("out, fragment", [c[1:] for c in OUT_CASES], ids=[c[0] for c in OUT_CASES])
def test_an_output_folder_that_cannot_be_written_is_refused(command, out, fragment, tmp_path, capsys):
    (tmp_path / "taken").write_text("keep me")
    out = out(tmp_path)
    extra = ["--baseline", str(tmp_path / "b.json")] if command == "regress" else []
    code, lines = bench(capsys, command, str(write_grid(tmp_path)), "--out", str(out), *extra)
    assert_refused(code, lines, fragment)
    assert (tmp_path / "taken").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.yaml", "taken"]


@pytest.mark.parametrize("args, fragment", [
    (["zoo", "show", "vae-kl", "--out", "TMP"], "is a folder; name the file to write"),
    (["zoo", "show", "vae-kl", "--out", "TMP/taken/x.png"], "is a file, so nothing can be written below it"),
    (["plot", "TMP/no-run", "--out", "TMP/taken"], "is a file, not a folder"),
    (["verify", "TMP/entry.json", "--out", "TMP/taken"], "is a file, not a folder"),
], ids=["zoo show --out a folder", "zoo show --out below a file", "plot --out a file", "verify --out a file"])
def test_other_output_paths_that_cannot_be_written_are_refused(args, fragment, tmp_path, capsys):
    (tmp_path / "taken").write_text("keep me")
    code, lines = bench(capsys, *[a.replace("TMP", str(tmp_path)) for a in args])
    assert_refused(code, lines, fragment)
    assert (tmp_path / "taken").read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


@pytest.mark.parametrize("args, fragment", [
    (["zoo", "eval", "vae-kl", "--n", "0"], "--n must be at least 1, got 0"),  # -3 hung
    (["perf", "--batch", "0"], "--batch must be at least 1, got 0"),
    (["perf", "--repeats", "0"], "--repeats must be at least 1, got 0"),
    (["perf", "--attack-steps", "-1"], "--attack-steps must be 0 (skip the comparison) or more, got -1"),
    (["run", "grids/smoke.yaml", "--executor", "ray", "--cells-per-task", "0"], "--cells-per-task must be at least 1"),
    (["run", "grids/smoke.yaml", "--shard", "2/1"], "--shard '2/1': write i/n with 1 <= i <= n"),
    (["run", "grids/smoke.yaml", "--stale-after", "-5"], "--stale-after -5.0: give a positive number of seconds"),
])
def test_counts_below_one_are_refused(args, fragment, capsys):
    code, lines = bench(capsys, *args)
    assert_refused(code, lines, fragment)


# --- image folders ---------------------------------------------------------------------------------------
def test_a_16_bit_grayscale_png_is_scaled_by_its_depth(tmp_path):
    from bench.data import load_folder

    folder = tmp_path / "images"
    folder.mkdir()
    pixels = np.random.default_rng(0).integers(0, 65536, (2, 32, 32)).astype(np.uint16)
    for i, array in enumerate(pixels):
        write_png16(folder / f"{i}.png", array)
    assert Image.open(folder / "0.png").mode == "I;16"
    images = load_folder(str(folder), 2).images
    expected = torch.from_numpy(np.round(pixels / 65535 * 255) / 255).float()
    assert images.shape == (2, 3, 32, 32)
    assert torch.allclose(images, expected[:, None].expand(-1, 3, -1, -1), atol=1e-6)
    assert (images == 1).float().mean() < 0.01  # was 99.5% saturated


def test_a_16_bit_grayscale_target_image_is_scaled_by_its_depth(tmp_path):
    from bench.data import load_target_image

    write_png16(tmp_path / "target.png", np.full((32, 32), 32768, np.uint16))
    target = load_target_image(str(tmp_path / "target.png"), torch.zeros(1, 3, 32, 32), "photoguard")
    assert torch.allclose(target, torch.full((1, 3, 32, 32), 128 / 255), atol=1e-6)  # was 1.0 (clipped)


@pytest.mark.parametrize("array, mode", [(np.full((32, 32), 70000, np.int32), "I"),
                                         (np.full((32, 32), 0.5, np.float32), "F")])
def test_32_bit_and_float_pixels_are_refused(array, mode, tmp_path, capsys):
    folder = image_folder(tmp_path / "images", 1)
    Image.fromarray(array).save(folder / "1.png", format="TIFF")  # content decides, not the name
    assert Image.open(folder / "1.png").mode == mode
    out = tmp_path / "run"
    grid = write_grid(tmp_path, data={"dataset": "folder", "path": str(folder), "n": 2})
    code, lines = bench(capsys, "run", str(grid), "--out", str(out))
    assert_refused(code, lines, f"(mode {mode}) of no known range; save it as an 8-bit or 16-bit PNG", out)


def test_a_decompression_bomb_is_refused(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 32x32 is then more than twice the limit
    folder = image_folder(tmp_path / "images")
    out = tmp_path / "run"
    grid = write_grid(tmp_path, data={"dataset": "folder", "path": str(folder), "n": 2})
    code, lines = bench(capsys, "run", str(grid), "--out", str(out))
    assert_refused(code, lines, "decompression bomb", out)


def test_binary_captions_are_refused(tmp_path, capsys):
    folder = image_folder(tmp_path / "images")
    (folder / "captions.json").write_bytes(b"\xff\xfe\x80 not utf-8")
    out = tmp_path / "run"
    grid = write_grid(tmp_path, data={"dataset": "folder", "path": str(folder), "n": 2})
    code, lines = bench(capsys, "run", str(grid), "--out", str(out))
    assert_refused(code, lines, "write a JSON object of file name -> caption", out)


def test_an_image_folder_that_is_a_file_is_named_so(tmp_path, capsys):
    out = tmp_path / "run"
    grid = write_grid(tmp_path, data={"dataset": "folder", "path": str(tmp_path / "grid.yaml"), "n": 2})
    code, lines = bench(capsys, "run", str(grid), "--out", str(out))
    assert_refused(code, lines, "is not a folder; check data.path", out)


def test_images_too_small_for_lpips_are_refused(tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(2):
        Image.new("RGB", (30, 30), (10 * i, 20, 30)).save(folder / f"{i}.png")
    out = tmp_path / "run"
    grid = write_grid(tmp_path, data={"dataset": "folder", "path": str(folder), "n": 2})
    code, lines = bench(capsys, "run", str(grid), "--out", str(out))
    assert_refused(code, lines, "needs sides of at least 32: resize them", out)


def test_an_empty_tensor_file_is_refused(tmp_path, capsys):
    from safetensors.torch import save_file

    save_file({"images": torch.zeros(0, 3, 32, 32)}, tmp_path / "images.safetensors")
    out = tmp_path / "run"
    grid = write_grid(tmp_path, data={"dataset": "tensors", "path": str(tmp_path / "images.safetensors"), "n": 1})
    code, lines = bench(capsys, "run", str(grid), "--out", str(out))
    assert_refused(code, lines, "holds no images", out)


def test_sides_the_autoencoder_cannot_downsample_are_refused(tmp_path, capsys):
    """vae-kl downsamples by 4: 36x34 would decode to 36x36 and fail inside a metric; refused before
    the run folder is created."""
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(2):
        Image.new("RGB", (36, 34), (10 * i, 20, 30)).save(folder / f"{i}.png")
    grid = write_grid(tmp_path, data={"dataset": "folder", "path": str(folder), "n": 2})
    code, lines = bench(capsys, "run", str(grid), "--out", str(tmp_path / "run"))
    assert_refused(code, lines, "vae-kl downsamples by 4, so image sides must be multiples of 4", tmp_path / "run")


# --- model folders: a local folder gets a hint about its layout, never a download command ------------------
def _decoy_with_stray_weights(folder: Path, tiny: Path) -> None:
    shutil.copy(tiny / "config.json", folder / "config.json")
    (folder / "model.safetensors").write_bytes(b"decoy")


def _decoy_with_fewer_layers_in_the_weights(folder: Path, tiny: Path) -> None:
    shutil.copytree(tiny, folder, dirs_exist_ok=True)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "layers_per_block": 2}))


def _decoy_with_a_mistyped_config(folder: Path, tiny: Path) -> None:
    shutil.copytree(tiny, folder, dirs_exist_ok=True)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "block_out_channels": 5}))


@pytest.mark.parametrize("make, fragment", [
    (_decoy_with_stray_weights, "it must be a diffusers AutoencoderKL saved with save_pretrained"),
    (_decoy_with_fewer_layers_in_the_weights, "the weights have no"),
    (_decoy_with_a_mistyped_config, "it must be a diffusers AutoencoderKL saved with save_pretrained"),
], ids=["stray .safetensors", "weights lack layers of the config", "mistyped config"])
def test_a_local_model_folder_gets_a_layout_hint(make, fragment, tiny_vae_dir, tmp_path, capsys):
    folder = tmp_path / "decoy"
    folder.mkdir()
    make(folder, Path(tiny_vae_dir))
    out = tmp_path / "run"
    grid = write_grid(tmp_path, defenses=[{"name": "vae", "model": str(folder)}])
    code, lines = bench(capsys, "run", str(grid), "--out", str(out))
    assert_refused(code, lines, fragment, out)
    assert "huggingface-cli" not in "\n".join(lines)


@pytest.mark.parametrize("name", ["ldm-t2i", "clip-proxy"])
def test_a_zoo_model_that_is_not_an_autoencoder_is_named_so(name, capsys):
    code, lines = bench(capsys, "zoo", "fragility", name)
    assert_refused(code, lines, f"zoo model {name!r} is a ")
    assert "vae-kl" in lines[-1] and "safetensors" not in lines[-1]
