"""A session's preprocessing output on disk: egocentric crops, per-frame scalars, quality.

Crops are kept as uint8 (a quarter of float32: an hour of 32x32 crops is 110 MB) in an
uncompressed ``.npz`` so they can be memory-mapped by training instead of read whole.
"""

from __future__ import annotations

import json
import mmap
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model.kinematics import KINEMATICS_RECIPE, from_scalars, head_from_crops
from model.preprocess import QUALITY_NAMES, SCALAR_NAMES, Preprocessed, unit_float

FORMAT_VERSION = 1


@dataclass
class Features:
    """Preprocessed session. crops (T, S, S) uint8; scalars name -> (T,) float64;
    quality (T,) int8 codes into ``quality_names``; times (T,) seconds."""

    crops: np.ndarray
    scalars: dict[str, np.ndarray]
    quality: np.ndarray
    times: np.ndarray
    fps: float
    summary: dict[str, float | int | str]
    quality_names: tuple[str, ...] = tuple(QUALITY_NAMES)

    @property
    def n_frames(self) -> int:
        return int(self.crops.shape[0])

    def crops_float(self) -> np.ndarray:
        """(T, S, S) float32 in [0, 1], what the model takes."""
        return unit_float(self.crops)

    @property
    def polarity(self) -> str:
        """"dark" (a dark mouse on a light floor) or "bright" (as in depth video)."""
        return str(self.summary.get("polarity", "dark"))

    def kinematics(self, recipe: int = KINEMATICS_RECIPE) -> np.ndarray:
        """(T, F) per-frame kinematics the model takes beside the crops
        (:data:`model.kinematics.ALL_KINEMATIC_NAMES`), made by ``recipe``: to segment with a
        fitted model, pass its ``config.kin_recipe``."""
        return np.concatenate(
            [from_scalars(self.scalars, recipe), head_from_crops(self.crops, self.fps, recipe)],
            axis=1,
        )


def framing(summary: Mapping[str, Any]) -> int:
    """The crop framing (:data:`model.preprocess.CROP_FRAMING`) a session's features or a
    model's training sessions were made with; 1 where it was not recorded (older files)."""
    return int(summary.get("crop_framing", 1))


def from_preprocessed(pre: Preprocessed) -> Features:
    return Features(
        crops=pre.crops_u8,
        scalars={k: np.asarray(v, dtype=np.float64) for k, v in pre.scalars.items()},
        quality=np.asarray(pre.quality, dtype=np.int8),
        times=np.asarray(pre.times, dtype=np.float64),
        fps=float(pre.fps),
        summary=dict(pre.summary()),
    )


def save(features: Features, path: str | os.PathLike[str]) -> None:
    """Write atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial.npz")
    meta = {
        "version": FORMAT_VERSION,
        "fps": features.fps,
        "summary": features.summary,
        "quality_names": list(features.quality_names),
        "scalar_names": list(features.scalars),
    }
    arrays = {f"scalar_{k}": v for k, v in features.scalars.items()}
    np.savez(
        tmp,
        crops=features.crops,
        quality=features.quality,
        times=features.times,
        meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
        **arrays,  # type: ignore[arg-type]  # numpy's stub takes these for its flags
    )
    os.replace(tmp, path)


def load(path: str | os.PathLike[str], *, mmap: bool = True) -> Features:
    """Read features; with ``mmap`` the crops are memory-mapped, not read into memory."""
    path = Path(path)
    with np.load(path) as data:
        meta = json.loads(bytes(data["meta"]).decode())
        if meta.get("version") != FORMAT_VERSION:
            raise ValueError(f"{path.name}: features format {meta.get('version')} is not supported")
        scalars = {k: data[f"scalar_{k}"] for k in meta["scalar_names"]}
        quality, times = data["quality"], data["times"]
        crops = _mmap_member(path, "crops.npy") if mmap else data["crops"]
    return Features(
        crops=crops,
        scalars=scalars,
        quality=quality,
        times=times,
        fps=float(meta["fps"]),
        summary=meta["summary"],
        quality_names=tuple(meta["quality_names"]),
    )


def _mmap_member(path: Path, member: str) -> np.ndarray:
    """Memory-map an array stored uncompressed inside an .npz (zip) file."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
        with zf.open(member) as fh:
            major, _minor = np.lib.format.read_magic(fh)
            read_header = (
                np.lib.format.read_array_header_1_0
                if major == 1
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(fh)
            header_len = fh.tell()
    with path.open("rb") as raw:
        raw.seek(info.header_offset)
        local = raw.read(30)
        name_len = int.from_bytes(local[26:28], "little")
        extra_len = int.from_bytes(local[28:30], "little")
        offset = info.header_offset + 30 + name_len + extra_len + header_len
    return np.memmap(
        path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C"
    )


def release_pages(array: np.ndarray) -> None:
    """Unmap the pages of a memory-mapped array (from :func:`load` with ``mmap=True``) from
    this process; they stay in the page cache and are read back when touched. A fit reads each
    session's crops once: without this, every session's pages would stay mapped, and count in
    the worker's resident memory, until the fit ends (0.9 GB of 32x32 crops on 8 h of video).
    Arrays not backed by a mapping are left alone."""
    mapping = getattr(array, "_mmap", None)  # np.memmap and its views keep their mmap here
    if isinstance(mapping, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
        mapping.madvise(mmap.MADV_DONTNEED)


__all__ = [
    "SCALAR_NAMES", "Features", "framing", "from_preprocessed", "load", "release_pages", "save",
]
