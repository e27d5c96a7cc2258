"""Loading MNIST from the files bundled in ``data/mnist/`` (provided; no network access).

Every file is checked against ``data/mnist/SHA256SUMS`` before it is decoded, so a truncated or
edited file is reported by name instead of silently training on garbage. Decoded arrays are cached
as ``.npy`` beside the files (keyed by the checksum), which makes later loads take milliseconds.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import struct
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = ["MNIST", "MNISTDataError", "load_mnist", "find_mnist_dir", "binary_pair"]

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
RESTORE_HINT = (
    "Restore it from the project's repository (for example `git checkout -- data/mnist`), "
    "or point the MNIST_DIR environment variable at a folder holding the four original files."
)


class MNISTDataError(RuntimeError):
    """A bundled MNIST file is missing, corrupted or not in the IDX format."""


class MNIST(NamedTuple):
    """The four arrays. Images are ``(N, 784)`` float32 in [0, 1]; labels ``(N,)`` int64."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


def find_mnist_dir(root: str | os.PathLike | None = None) -> Path:
    """The folder holding the MNIST files: ``root``, else ``$MNIST_DIR``, else ``data/mnist``
    of the project this package sits in, else ``./data/mnist``."""
    candidates = []
    if root is not None:
        return Path(root)
    if os.environ.get("MNIST_DIR"):
        return Path(os.environ["MNIST_DIR"])
    candidates.append(Path(__file__).resolve().parent.parent / "data" / "mnist")
    candidates.append(Path.cwd() / "data" / "mnist")
    for c in candidates:
        if (c / "SHA256SUMS").is_file():
            return c
    return candidates[0]


def _expected_checksums(folder: Path) -> dict[str, str]:
    sums = folder / "SHA256SUMS"
    if not sums.is_file():
        raise MNISTDataError(f"checksum list {sums} is missing. {RESTORE_HINT}")
    out = {}
    for line in sums.read_text().splitlines():
        if line.strip():
            digest, name = line.split()
            out[name.lstrip("*")] = digest
    return out


def _decode_idx(raw: bytes, name: str) -> np.ndarray:
    if len(raw) < 8:
        raise MNISTDataError(f"{name} is too short to be an IDX file. {RESTORE_HINT}")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08 or ndim not in (1, 3):
        raise MNISTDataError(f"{name} does not start with an IDX uint8 header. {RESTORE_HINT}")
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise MNISTDataError(f"{name} holds {data.size} values, its header says {dims}. {RESTORE_HINT}")
    return data.reshape(dims)


def _load_file(folder: Path, name: str, digest: str) -> np.ndarray:
    path = folder / name
    if not path.is_file():
        raise MNISTDataError(f"MNIST file {path} is missing. {RESTORE_HINT}")
    blob = path.read_bytes()
    actual = hashlib.sha256(blob).hexdigest()
    if actual != digest:
        raise MNISTDataError(
            f"MNIST file {path} is corrupted: its sha256 is {actual[:16]}..., "
            f"expected {digest[:16]}... (from SHA256SUMS). {RESTORE_HINT}"
        )
    cache = folder / ".cache" / f"{name}.{digest[:16]}.npy"
    if cache.is_file():
        try:
            return np.load(cache, allow_pickle=False)
        except (OSError, ValueError):
            pass  # an unreadable cache is rebuilt below
    try:
        raw = gzip.decompress(blob)
    except (OSError, EOFError) as exc:
        raise MNISTDataError(f"MNIST file {path} is not valid gzip ({exc}). {RESTORE_HINT}") from None
    arr = _decode_idx(raw, str(path))
    try:  # caching is an optimisation: a read-only checkout still works
        cache.parent.mkdir(exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.save(fh, arr, allow_pickle=False)
        os.replace(tmp, cache)
    except OSError:
        pass
    return arr


def load_raw(root: str | os.PathLike | None = None, *, parts: tuple[str, ...] = tuple(FILES)) -> dict[str, np.ndarray]:
    """The undecorated uint8 arrays by part name (``train_images``: ``(60000, 28, 28)``, ...)."""
    folder = find_mnist_dir(root)
    sums = _expected_checksums(folder)
    out = {}
    for part in parts:
        name = FILES[part]
        if name not in sums:
            raise MNISTDataError(f"SHA256SUMS in {folder} has no entry for {name}. {RESTORE_HINT}")
        out[part] = _load_file(folder, name, sums[name])
    return out


def load_mnist(root: str | os.PathLike | None = None) -> MNIST:
    """Load MNIST as flat float32 images in [0, 1] and int64 labels.

    Returns
    -------
    MNIST
        ``X_train`` (60000, 784), ``y_train`` (60000,), ``X_test`` (10000, 784), ``y_test`` (10000,).

    Raises
    ------
    MNISTDataError
        If a file is missing or its checksum does not match, naming the file and how to restore it.
    """
    raw = load_raw(root)

    def images(a: np.ndarray) -> np.ndarray:
        return (a.reshape(len(a), -1).astype(np.float32) / np.float32(255.0))

    return MNIST(
        images(raw["train_images"]),
        raw["train_labels"].astype(np.int64),
        images(raw["test_images"]),
        raw["test_labels"].astype(np.int64),
    )


def binary_pair(data: MNIST, a: int = 3, b: int = 5) -> MNIST:
    """The images of digits ``a`` and ``b`` only, relabelled ``a -> 0`` and ``b -> 1``."""
    tr = (data.y_train == a) | (data.y_train == b)
    te = (data.y_test == a) | (data.y_test == b)
    return MNIST(
        data.X_train[tr], (data.y_train[tr] == b).astype(np.int64),
        data.X_test[te], (data.y_test[te] == b).astype(np.int64),
    )
