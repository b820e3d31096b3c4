"""Recognition network and decoder of the SLDS-SVAE (svae.md §3.1, §7.2).

Both are small MLPs on flattened frames (the paper's 200-200 layout). Frames are float32 in
[0, 1]; the encoder emits, per frame, a diagonal Gaussian potential on x_t as a mean and a bounded
precision, so that r_t = R_t m_t stays well conditioned; the decoder emits sigmoid pixel means and
a per-pixel noise variance bounded from below, so that it cannot fit detail by shrinking the noise
instead of using the latent dynamics (svae.md §4.4).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

# Bounds on the recognition log-precision, as the original's 10·tanh(·/10) and clamp(−10, 10).
_LOG_PREC_BOUND = 8.0


def _mlp(n_in: int, hidden: int, n_out: int, layers: int = 2) -> nn.Sequential:
    mods: list[nn.Module] = []
    width = n_in
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), nn.ELU()]
        width = hidden
    mods.append(nn.Linear(width, n_out))
    return nn.Sequential(*mods)


class Encoder(nn.Module):
    """Frame (…, P) → recognition potential on x: precision diagonal R (…, D) and r = R·m (…, D)."""

    def __init__(self, pixels: int, latent_dim: int, hidden: int = 200) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.net = _mlp(pixels, hidden, 2 * latent_dim)

    def forward(self, frames: Tensor) -> tuple[Tensor, Tensor]:
        """frames: (…, P) float32. Returns (R, r), each (…, D), float32."""
        out = self.net(frames)
        mean, raw = out.split(self.latent_dim, dim=-1)
        log_prec = _LOG_PREC_BOUND * torch.tanh(raw / _LOG_PREC_BOUND)
        prec = torch.exp(log_prec)
        return prec, prec * mean


class Decoder(nn.Module):
    """Latent x (…, D) → pixel means (…, P) in (0, 1), then ``extra`` unbounded means (the
    standardised kinematics); a learned per-output variance ≥ min_std².

    ``extra_weight`` counts each extra output as that many pixels in the likelihood: a handful
    of kinematic numbers would otherwise be drowned by a thousand pixels.
    """

    def __init__(
        self,
        pixels: int,
        latent_dim: int,
        hidden: int = 200,
        min_std: float = 0.03,
        extra: int = 0,
        extra_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.pixels = pixels
        self.net = _mlp(latent_dim, hidden, pixels + extra)
        self.min_log_var = 2.0 * math.log(min_std)
        # Start at a noise std of 0.1 (a tenth of the intensity range).
        start = math.log(math.expm1(2.0 * math.log(0.1) - self.min_log_var))
        self.raw_log_var = nn.Parameter(torch.full((pixels + extra,), start))
        weight = torch.ones(pixels + extra)
        weight[pixels:] = extra_weight
        self.register_buffer("weight", weight, persistent=False)

    def log_var(self) -> Tensor:
        """(P,) per-pixel log-variance, bounded below by 2·log(min_std)."""
        return self.min_log_var + nn.functional.softplus(self.raw_log_var)

    def forward(self, x: Tensor) -> Tensor:
        """x: (…, D) → means (…, P + extra): sigmoid pixels, then linear extras."""
        out = self.net(x)
        if out.shape[-1] == self.pixels:
            return torch.sigmoid(out)
        return torch.cat([torch.sigmoid(out[..., : self.pixels]), out[..., self.pixels :]], -1)

    def log_likelihood(self, x: Tensor, frames: Tensor) -> Tensor:
        """Σ_outputs weight · log N(frames | μ(x), σ²), shape (…) for x (…, D), frames (…, P')."""
        mu = self(x)
        lv = self.log_var()
        terms = ((frames - mu) ** 2) * torch.exp(-lv) + lv + math.log(2 * math.pi)
        return -0.5 * (terms * self.weight).sum(-1)
