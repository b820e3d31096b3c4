"""A fitted model as a versioned artifact on disk: JSON config + tensors via ``torch.save``.

Layout of a model directory:
    model.json   {"format_version", "config", "summary", "syllables"}  (human-readable)
    weights.pt   {"networks": state_dict, "params": {...}, "prior": {...}}  (float tensors only)

Syllable ids are the state indices of the saved conjugate parameters. ``fit_model`` orders them
once, by usage, before the first save; nothing afterwards permutes them, so an id means the same
behaviour for the life of the artifact.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from model.priors import MNIW, SLDSParams
from model.summary import FitSummary
from model.svae import SLDSSVAE, SVAEConfig, params_to

FORMAT_VERSION = 1
CONFIG_FILE = "model.json"
WEIGHTS_FILE = "weights.pt"


class ArtifactError(RuntimeError):
    """A model directory that cannot be loaded (missing files, unknown format version)."""


def _params_to_dict(p: SLDSParams) -> dict[str, torch.Tensor]:
    out = {"init": p.init, "trans": p.trans}
    for name, mniw in (("dynamics", p.dynamics), ("initial", p.initial)):
        for f, v in zip(MNIW._fields, mniw, strict=True):
            out[f"{name}.{f}"] = v
    return {k: v.detach().cpu().contiguous() for k, v in out.items()}


def _params_from_dict(d: dict[str, torch.Tensor]) -> SLDSParams:
    def mniw(name: str) -> MNIW:
        return MNIW(*(d[f"{name}.{f}"] for f in MNIW._fields))

    return SLDSParams(d["init"], d["trans"], mniw("dynamics"), mniw("initial"))


def default_device(device: str | None = None) -> torch.device:
    """The requested device, else CUDA when available, else CPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class FittedModel:
    """A trained SLDS-SVAE: config, networks and q(θ), plus a summary of its training.

    ``summary`` holds plain JSON values (states used, median syllable duration, timings, ...).
    """

    config: SVAEConfig
    svae: SLDSSVAE
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def states(self) -> int:
        return self.config.states

    @property
    def fit_summary(self) -> FitSummary:
        return FitSummary.from_dict(self.summary)

    @property
    def device(self) -> torch.device:
        return self.svae.device

    def to(self, device: str | torch.device) -> FittedModel:
        self.svae.to_device(device)
        return self

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write model.json and weights.pt into ``directory`` (created if needed)."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        weights = {
            "networks": {k: v.detach().cpu() for k, v in self.svae.state_dict().items()},
            "params": _params_to_dict(self.svae.params),
            "prior": _params_to_dict(self.svae.prior),
        }
        tmp = path / (WEIGHTS_FILE + ".tmp")
        torch.save(weights, tmp)
        tmp.replace(path / WEIGHTS_FILE)
        meta = {
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "summary": self.summary,
            "syllables": list(range(self.config.states)),
        }
        (path / CONFIG_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike[str], *, device: str | None = None) -> FittedModel:
        """Read a model directory written by :meth:`save`."""
        path = Path(directory)
        cfg_path, w_path = path / CONFIG_FILE, path / WEIGHTS_FILE
        if not cfg_path.is_file() or not w_path.is_file():
            raise ArtifactError(f"{path} is not a fitted model (needs {CONFIG_FILE} and "
                                f"{WEIGHTS_FILE}).")
        meta = json.loads(cfg_path.read_text())
        version = meta.get("format_version")
        if version != FORMAT_VERSION:
            raise ArtifactError(
                f"{path}: model format version {version!r} is not supported (this build reads "
                f"version {FORMAT_VERSION}); refit the model."
            )
        config = SVAEConfig.from_dict(meta["config"])
        weights = torch.load(w_path, map_location="cpu", weights_only=True)
        svae = SLDSSVAE(config)
        svae.load_state_dict(weights["networks"])
        svae.params = _params_from_dict(weights["params"])
        svae.prior = _params_from_dict(weights["prior"])
        svae.eval()
        model = cls(config, svae, meta.get("summary", {}))
        dev = default_device(device)
        svae.to_device(dev)
        svae.params = params_to(svae.params, dev)
        return model
