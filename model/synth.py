"""Synthetic top-down mouse videos with known behaviour, for tests and benchmarks.

A rendered mouse (two-part body, head, tail) moves in a round arena. Its behaviour follows a
known semi-Markov chain over :data:`BEHAVIOURS`, each bout lasting 300-1000 ms (gamma
distributed). Behaviours differ in what the mouse *does* (gait sway, body stretch, bend, head
movement, rearing), not in where it is: any behaviour can happen anywhere, and pose parameters
move smoothly between bouts (first-order lag of 50 ms), so a single frame is rarely enough to
tell them apart but a few hundred milliseconds are. Sensor noise, a camera blur, uneven
lighting and H.264 compression make the pixels imperfect.

Polarity ``"dark"``: a dark mouse on a light floor (like the real clips in ``shared/data``);
``"bright"``: a bright mouse on a dark floor whose brightness grows with height, like depth video.

Ground truth uses the conventions of :mod:`model.preprocess`: pixels with y down, ``heading``
is ``atan2(dy, dx)`` in radians.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from model.ethogram import bouts_from_labels

BEHAVIOURS: tuple[str, ...] = (
    "pause",
    "walk",
    "run",
    "turn_left",
    "turn_right",
    "rear",
    "groom",
    "sniff",
)

# Per behaviour: forward speed (body lengths/s), turning rate (rad/s, + = clockwise on screen),
# body stretch, width factor, height (0 floor .. 1 fully reared), body bend (rad), head
# extension (fraction of the head's length: + stretched out, - tucked in), head oscillation
# amplitude (rad), body-undulation amplitude (rad), their frequency (Hz), mean bout length (s).
_KEYS = ("v", "w", "s", "wd", "h", "bend", "head", "amp", "bamp", "f")
_PARAMS: dict[str, dict[str, float]] = {
    "pause": dict(v=0, w=0, s=1.0, wd=1.0, h=0, bend=0, head=0, amp=0, bamp=0, f=0, dur=0.65),
    "walk": dict(
        v=1.8, w=0, s=1.05, wd=0.97, h=0, bend=0, head=0.1, amp=0.1, bamp=0.3, f=3.5, dur=0.6
    ),
    "run": dict(
        v=5.0, w=0, s=1.2, wd=0.85, h=0, bend=0, head=0.2, amp=0.05, bamp=0.18, f=6.5, dur=0.45
    ),
    "turn_left": dict(
        v=0.5, w=-3.2, s=0.95, wd=1.05, h=0, bend=-0.45, head=0, amp=0, bamp=0, f=0, dur=0.5
    ),
    "turn_right": dict(
        v=0.5, w=3.2, s=0.95, wd=1.05, h=0, bend=0.45, head=0, amp=0, bamp=0, f=0, dur=0.5
    ),
    "rear": dict(
        v=0, w=0, s=0.62, wd=1.12, h=1.0, bend=0, head=0, amp=0.25, bamp=0, f=0.8, dur=0.8
    ),
    # Grooming curls the body to one side (the side is drawn per bout) and tucks the head in.
    "groom": dict(
        v=0, w=0, s=0.82, wd=1.2, h=0, bend=0.5, head=-0.6, amp=0.15, bamp=0, f=6.0, dur=0.9
    ),
    "sniff": dict(
        v=0.1, w=0, s=1.0, wd=1.0, h=0, bend=0, head=0.5, amp=0.6, bamp=0, f=1.5, dur=0.7
    ),
}

# Plausible successors: locomotion leads to turns and pauses, pauses to anything, etc.
# Unlisted pairs keep a small probability so every behaviour can follow every other.
_AFFINITY: dict[str, dict[str, float]] = {
    "pause": {"walk": 3, "sniff": 2, "rear": 2, "groom": 2, "turn_left": 1, "turn_right": 1},
    "walk": {"run": 2, "turn_left": 2, "turn_right": 2, "pause": 2, "sniff": 1},
    "run": {"walk": 3, "turn_left": 1, "turn_right": 1, "pause": 1},
    "turn_left": {"walk": 3, "pause": 1, "sniff": 1, "run": 1},
    "turn_right": {"walk": 3, "pause": 1, "sniff": 1, "run": 1},
    "rear": {"pause": 2, "sniff": 2, "walk": 1, "groom": 1},
    "groom": {"pause": 2, "sniff": 1, "walk": 1, "rear": 1},
    "sniff": {"walk": 2, "rear": 2, "pause": 1, "turn_left": 1, "turn_right": 1, "groom": 1},
}

_TAU = 0.05  # s, lag with which the pose follows a new behaviour's targets (~3 frames)
_MIN_BOUT, _MAX_BOUT = 0.3, 1.0  # s
_GAMMA_SHAPE = 8.0


@dataclass(frozen=True)
class SessionTruth:
    """Ground truth of one synthetic session (T frames).

    ``behaviour`` (T,) int ids into ``names``; ``x``, ``y`` (T,) body centre in px;
    ``heading`` (T,) rad; ``times`` (T,) s. ``transition`` (K, K) is the embedded jump chain
    (zero diagonal) and ``mean_duration`` (K,) the mean bout length in s of each behaviour.
    """

    behaviour: np.ndarray
    x: np.ndarray
    y: np.ndarray
    heading: np.ndarray
    times: np.ndarray
    names: tuple[str, ...]
    fps: float
    polarity: str
    size: tuple[int, int]
    transition: np.ndarray
    mean_duration: np.ndarray

    @property
    def n_frames(self) -> int:
        return len(self.behaviour)

    def bouts(self) -> list[tuple[int, int, int]]:
        """``(start, end_exclusive, behaviour)`` of each run of one behaviour."""
        return bouts_from_labels(self.behaviour)

    def write_csv(self, path: str | os.PathLike[str]) -> None:
        """``frame,time_s,behaviour,behaviour_name,x,y,heading``, one row per frame."""
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["frame", "time_s", "behaviour", "behaviour_name", "x", "y", "heading"])
            for i in range(self.n_frames):
                b = int(self.behaviour[i])
                w.writerow(
                    [
                        i,
                        f"{self.times[i]:.6f}",
                        b,
                        self.names[b],
                        f"{self.x[i]:.3f}",
                        f"{self.y[i]:.3f}",
                        f"{self.heading[i]:.5f}",
                    ]
                )


def read_truth(path: str | os.PathLike[str]) -> tuple[np.ndarray, list[str]]:
    """Behaviour ids (T,) and names per frame from a truth CSV written by this module."""
    ids, names = [], []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            ids.append(int(row["behaviour"]))
            names.append(row["behaviour_name"])
    return np.asarray(ids, dtype=np.int64), names


def transition_matrix(
    behaviour_weights: Mapping[str, float] | Sequence[float] | None = None,
) -> np.ndarray:
    """Jump-chain transition matrix (K, K), rows sum to 1, zero diagonal (except for a
    behaviour that is the only one with weight).

    ``behaviour_weights`` (by name, or one per behaviour) multiply the probability of moving
    *into* each behaviour, so a "drug" cohort can rear or groom more than its controls.
    """
    k = len(BEHAVIOURS)
    weights = np.ones(k)
    if behaviour_weights is not None:
        if isinstance(behaviour_weights, Mapping):
            unknown = set(behaviour_weights) - set(BEHAVIOURS)
            if unknown:
                raise ValueError(f"Unknown behaviours {sorted(unknown)}; known: {BEHAVIOURS}.")
            for name, wgt in behaviour_weights.items():
                weights[BEHAVIOURS.index(name)] = float(wgt)
        else:
            weights = np.asarray(behaviour_weights, dtype=np.float64)
            if weights.shape != (k,):
                raise ValueError(f"behaviour_weights needs {k} values, one per behaviour.")
        if np.any(weights < 0) or not np.any(weights > 0):
            raise ValueError("behaviour_weights must be non-negative and not all zero.")
    a = np.full((k, k), 0.25)
    for i, src in enumerate(BEHAVIOURS):
        for dst, v in _AFFINITY[src].items():
            a[i, BEHAVIOURS.index(dst)] = float(v)
    a *= weights[None, :]
    np.fill_diagonal(a, 0.0)
    # A behaviour with nowhere else to go (only it has weight) follows itself, bout after bout.
    stuck = a.sum(axis=1) == 0
    a[stuck, stuck] = 1.0
    return a / a.sum(axis=1, keepdims=True)


def _simulate(
    n_frames: int,
    fps: float,
    rng: np.random.Generator,
    size: tuple[int, int],
    body_length: float,
    transition: np.ndarray,
) -> dict[str, np.ndarray]:
    """Behaviour sequence and smooth pose trajectory, one value per frame."""
    k = len(BEHAVIOURS)
    dt = 1.0 / fps
    mean_dur = np.array([_PARAMS[b]["dur"] for b in BEHAVIOURS])
    labels = np.empty(n_frames, dtype=np.int64)
    t = 0
    # First behaviour: as likely as the chain makes entering it (weights of zero stay zero).
    entry = transition.sum(axis=0)
    state = int(rng.choice(k, p=entry / entry.sum()))
    while t < n_frames:
        d = rng.gamma(_GAMMA_SHAPE, mean_dur[state] / _GAMMA_SHAPE)
        n = max(1, round(np.clip(d, _MIN_BOUT, _MAX_BOUT) * fps))
        labels[t : t + n] = state
        t += n
        state = int(rng.choice(k, p=transition[state]))

    table = np.array([[_PARAMS[b][key] for key in _KEYS] for b in BEHAVIOURS])
    targets = table[labels]  # (T, len(_KEYS))
    # Grooming bends to a side drawn per bout.
    starts = np.flatnonzero(np.diff(labels, prepend=-1))
    side = np.repeat(rng.choice([-1.0, 1.0], len(starts)), np.diff(np.append(starts, n_frames)))
    targets[:, _KEYS.index("bend")] *= np.where(labels == BEHAVIOURS.index("groom"), side, 1.0)
    alpha = 1.0 - math.exp(-dt / _TAU)
    smooth = np.empty_like(targets)
    cur = targets[0].copy()
    for i in range(n_frames):
        cur += alpha * (targets[i] - cur)
        smooth[i] = cur
    v, w, stretch, width, height, bend, head_ext, amp, bamp, freq = smooth.T

    # Idiosyncratic wobble present in every behaviour, so no pose value alone gives it away.
    def ou(std: float, tau: float) -> np.ndarray:
        a = math.exp(-dt / tau)
        e = rng.normal(0.0, std * math.sqrt(1 - a * a), n_frames)
        out = np.empty(n_frames)
        acc = rng.normal(0.0, std)
        for i in range(n_frames):
            acc = a * acc + e[i]
            out[i] = acc
        return out

    phase = 2 * np.pi * np.cumsum(freq) * dt + rng.uniform(0, 2 * np.pi)
    bend = bend + bamp * np.sin(phase) + ou(0.1, 0.4)
    head_yaw = ou(0.08, 0.3)
    stretch = stretch * (1.0 + ou(0.03, 0.5))
    w = w + ou(0.4, 0.3)
    sway = amp * np.sin(phase + 0.5)
    is_groom = labels == BEHAVIOURS.index("groom")
    # Grooming: quick, irregular head strokes on top of the oscillation.
    head_yaw = head_yaw + sway + np.where(is_groom, rng.normal(0, 0.08, n_frames), 0.0)
    tail_wave = 1.5 * bamp * np.sin(phase - 1.0) + ou(0.15, 0.8)

    wpx, hpx = size
    cx, cy = wpx / 2.0, hpx / 2.0
    radius = 0.45 * min(wpx, hpx)
    x = np.empty(n_frames)
    y = np.empty(n_frames)
    heading = np.empty(n_frames)
    r0 = rng.uniform(0, radius * 0.5)
    a0 = rng.uniform(0, 2 * np.pi)
    px, py = cx + r0 * math.cos(a0), cy + r0 * math.sin(a0)
    th = rng.uniform(-np.pi, np.pi)
    margin = radius - 0.8 * body_length
    for i in range(n_frames):
        omega = w[i]
        dist = math.hypot(px - cx, py - cy)
        if dist > margin - body_length and v[i] > 0.2:
            # Near the wall a walking mouse veers inwards (positions stay inside the arena).
            inward = math.atan2(cy - py, cx - px)
            gain = min(1.0, (dist - margin + body_length) / body_length)
            omega += 4.0 * gain * math.sin(inward - th)
        th += omega * dt
        step = v[i] * body_length * dt
        nx, ny = px + step * math.cos(th), py + step * math.sin(th)
        nd = math.hypot(nx - cx, ny - cy)
        if nd > margin:
            nx, ny = cx + (nx - cx) * margin / nd, cy + (ny - cy) * margin / nd
        px, py = nx, ny
        x[i], y[i] = px, py
        heading[i] = math.atan2(math.sin(th), math.cos(th))
    # Grooming makes the whole body jitter a little in place.
    jitter = np.where(is_groom[:, None], rng.normal(0, 0.02 * body_length, (n_frames, 2)), 0.0)
    return dict(
        labels=labels,
        x=x + jitter[:, 0],
        y=y + jitter[:, 1],
        heading=heading,
        stretch=stretch,
        width=width,
        height=height,
        bend=bend,
        head_yaw=head_yaw,
        head_ext=head_ext,
        tail_wave=tail_wave,
    )


class _Renderer:
    """Draws the arena once and the mouse per frame into a small patch (cheap at any size)."""

    def __init__(
        self, size: tuple[int, int], polarity: str, body_length: float, rng: np.random.Generator
    ) -> None:
        if polarity not in ("dark", "bright"):
            raise ValueError('polarity must be "dark" or "bright".')
        w, h = size
        self.size = size
        self.polarity = polarity
        self.bl = body_length
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        cx, cy = w / 2.0, h / 2.0
        r = np.hypot(xx - cx, yy - cy) / (0.45 * min(w, h))
        gx, gy = rng.uniform(-1, 1, 2)
        light = 1.0 + 0.06 * ((xx - cx) * gx + (yy - cy) * gy) / max(w, h) - 0.08 * r**2
        texture = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 3) * 6
        if polarity == "dark":
            floor = 172.0 * light + texture
            floor = np.where(r > 1.0, 60.0 + texture, floor)  # dark surround, as in tracktor
            self.body, self.tail, self.rear_gain = 48.0, 95.0, -12.0
        else:
            floor = 28.0 + 6.0 * light + texture * 0.4
            floor = np.where(r > 1.0, 60.0, floor)  # arena wall: taller, so brighter
            self.body, self.tail, self.rear_gain = 120.0, 70.0, 85.0
        self.floor = np.clip(np.rint(floor), 0, 255).astype(np.uint8)
        # Sensor noise from a small bank, split into a positive and a negative uint8 part so
        # that adding it is two saturating OpenCV calls (a 640x480 frame in well under 1 ms).
        bank = np.rint(rng.normal(0.0, 3.0, (8, h, w)))
        self.noise_up = np.clip(bank, 0, 255).astype(np.uint8)
        self.noise_down = np.clip(-bank, 0, 255).astype(np.uint8)
        self.rng = rng
        self.half = math.ceil(1.6 * body_length) + 4

    def frame(self, pose: dict[str, float]) -> np.ndarray:
        w, h = self.size
        img = self.floor.copy()
        x, y = pose["x"], pose["y"]
        r = self.half
        x0, y0 = max(0, int(x) - r), max(0, int(y) - r)
        x1, y1 = min(w, int(x) + r + 1), min(h, int(y) + r + 1)
        if x1 > x0 and y1 > y0:
            alpha, shade = self._mouse(pose, x0, y0, x1 - x0, y1 - y0)
            patch = img[y0:y1, x0:x1].astype(np.float32)
            patch += alpha * (shade - patch)
            img[y0:y1, x0:x1] = np.clip(np.rint(patch), 0, 255).astype(np.uint8)
        k = int(self.rng.integers(len(self.noise_up)))
        cv2.add(img, self.noise_up[k], dst=img)
        cv2.subtract(img, self.noise_down[k], dst=img)
        return img

    def _mouse(
        self, pose: dict[str, float], x0: int, y0: int, pw: int, ph: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Coverage (0..1) and grey level of the mouse over a patch at (x0, y0)."""
        sub = 16  # fixed-point subpixel drawing: cv2 shift=4
        L = self.bl * pose["stretch"]
        W = 0.42 * self.bl * pose["width"]
        th, bend, yaw = pose["heading"], pose["bend"], pose["head_yaw"]
        cx, cy = pose["x"] - x0, pose["y"] - y0
        body = np.zeros((ph, pw), np.uint8)
        tail = np.zeros((ph, pw), np.uint8)

        def pt(px: float, py: float) -> tuple[int, int]:
            return (round(px * sub), round(py * sub))

        def ell(img: np.ndarray, px: float, py: float, a: float, b: float, ang: float) -> None:
            cv2.ellipse(
                img,
                pt(px, py),
                (max(1, round(a * sub)), max(1, round(b * sub))),
                math.degrees(ang),
                0,
                360,
                255,
                -1,
                cv2.LINE_AA,
                4,
            )

        rear_dir = th - bend / 2
        front_dir = th + bend / 2
        # Haunches behind the centre, shoulders ahead, each turned by half the bend.
        hx, hy = cx - 0.2 * L * math.cos(rear_dir), cy - 0.2 * L * math.sin(rear_dir)
        ell(body, hx, hy, 0.32 * L, 0.5 * W, rear_dir)
        sx, sy = cx + 0.14 * L * math.cos(front_dir), cy + 0.14 * L * math.sin(front_dir)
        ell(body, sx, sy, 0.27 * L, 0.42 * W, front_dir)
        head_dir = front_dir + yaw
        reach = 0.1 * L * (1.0 + pose["head_ext"])
        nx = sx + 0.27 * L * math.cos(front_dir) + reach * math.cos(head_dir)
        ny = sy + 0.27 * L * math.sin(front_dir) + reach * math.sin(head_dir)
        ell(body, nx, ny, 0.17 * self.bl, 0.11 * self.bl * pose["width"], head_dir)
        # Tail: from the rump, trailing backwards with a travelling wave.
        tx, ty = hx - 0.3 * L * math.cos(rear_dir), hy - 0.3 * L * math.sin(rear_dir)
        pts = [pt(tx, ty)]
        ang = rear_dir + math.pi
        seg = 0.9 * self.bl / 8
        for j in range(8):
            ang += pose["tail_wave"] * 0.25 * math.cos(j * 0.8)
            tx, ty = tx + seg * math.cos(ang), ty + seg * math.sin(ang)
            pts.append(pt(tx, ty))
        thick = max(1, round(0.06 * self.bl))
        cv2.polylines(tail, [np.array(pts, np.int32)], False, 255, thick, cv2.LINE_AA, 4)
        a_body = body.astype(np.float32) / 255.0
        a_tail = tail.astype(np.float32) / 255.0
        shade = np.full((ph, pw), self.body + self.rear_gain * pose["height"], np.float32)
        if self.polarity == "bright":
            # Depth-like: the back is highest along the spine, lower at the flanks.
            shade = cv2.GaussianBlur(a_body, (0, 0), max(1.0, 0.08 * self.bl)) * shade + 40.0
        shade = np.where(a_body > 0.01, shade, self.tail).astype(np.float32)
        alpha = np.maximum(a_body, a_tail * 0.9)
        alpha = cv2.GaussianBlur(alpha, (3, 3), 0.7)  # camera blur
        return alpha, shade


def render_session(
    seconds: float,
    *,
    fps: float = 30.0,
    seed: int = 0,
    polarity: str = "dark",
    size: tuple[int, int] = (320, 240),
    behaviour_weights: Mapping[str, float] | Sequence[float] | None = None,
    body_length: float | None = None,
) -> tuple[Iterator[np.ndarray], SessionTruth]:
    """Simulate a session and return ``(frames, truth)``.

    ``frames`` lazily yields ``(H, W)`` uint8 grey frames (nothing is held in memory);
    ``truth`` is known at once. ``size`` is (width, height); ``body_length`` (px, nose to rump)
    defaults to 9% of the shorter side, as in the tracktor clip.
    """
    if seconds <= 0 or fps <= 0:
        raise ValueError("seconds and fps must be positive.")
    rng = np.random.default_rng(seed)
    n = max(1, round(seconds * fps))
    bl = float(body_length or 0.09 * min(size))
    trans = transition_matrix(behaviour_weights)
    sim = _simulate(n, fps, rng, size, bl, trans)
    truth = SessionTruth(
        behaviour=sim["labels"],
        x=sim["x"],
        y=sim["y"],
        heading=sim["heading"],
        times=np.arange(n) / fps,
        names=BEHAVIOURS,
        fps=fps,
        polarity=polarity,
        size=size,
        transition=trans,
        mean_duration=np.array([_PARAMS[b]["dur"] for b in BEHAVIOURS]),
    )
    renderer = _Renderer(size, polarity, bl, np.random.default_rng(seed + 7919))
    keys = (
        "x",
        "y",
        "heading",
        "stretch",
        "width",
        "height",
        "bend",
        "head_yaw",
        "head_ext",
        "tail_wave",
    )

    def frames() -> Iterator[np.ndarray]:
        for i in range(n):
            yield renderer.frame({k: float(sim[k][i]) for k in keys})

    return frames(), truth


def write_video(
    path: str | os.PathLike[str], frames: Iterator[np.ndarray], fps: float, *, crf: int = 24
) -> int:
    """Encode grey frames as H.264 (libx264, yuv420p) MP4; returns the number of frames.

    ``crf`` 24 gives camera-like bit rates (about 1.5 MB per minute at 640x480, near the real
    clips): lower values keep every grain of sensor noise and make decoding several times
    slower than for real recordings, which would flatter any speed ratio against decoding.
    """
    n = 0
    rate = (
        Fraction(round(fps))
        if abs(fps - round(fps)) < 1e-6
        else Fraction(fps).limit_denominator(1001)
    )
    with av.open(str(path), "w") as container:
        stream: av.video.stream.VideoStream | None = None
        for image in frames:
            h, w = image.shape
            if stream is None:
                stream = container.add_stream("libx264", rate=rate)
                stream.width, stream.height = w - w % 2, h - h % 2
                stream.pix_fmt = "yuv420p"
                # A key frame every 2 s, as many lab cameras write: seekable, cheap to sample.
                stream.options = {"crf": str(crf), "preset": "veryfast", "g": str(round(2 * fps))}
            hh, ww = stream.height, stream.width
            # Build the yuv420p planes directly (grey: chroma 128): no colour conversion.
            buf = np.full((hh * 3 // 2, ww), 128, np.uint8)
            buf[:hh] = image[:hh, :ww]
            frame = av.VideoFrame.from_ndarray(buf, format="yuv420p")
            for packet in stream.encode(frame):
                container.mux(packet)
            n += 1
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    return n


def write_session(
    out_dir: str | os.PathLike[str],
    index: int,
    *,
    seconds: float = 60.0,
    seed: int = 0,
    fps: float = 30.0,
    polarity: str = "dark",
    size: tuple[int, int] = (320, 240),
    behaviour_weights: Mapping[str, float] | Sequence[float] | None = None,
    prefix: str = "session",
) -> tuple[Path, Path]:
    """Session ``index`` of :func:`write_dataset`'s data set, alone (so that sessions can be
    rendered in parallel): ``<prefix>_NNN.mp4`` and its truth CSV. Returns (video, truth)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frames, truth = render_session(
        seconds,
        fps=fps,
        seed=seed * 1000 + index,
        polarity=polarity if polarity != "both" else ("dark", "bright")[index % 2],
        size=size,
        behaviour_weights=behaviour_weights,
    )
    video = out / f"{prefix}_{index:03d}.mp4"
    csv_path = out / f"{prefix}_{index:03d}.truth.csv"
    write_video(video, frames, fps)
    truth.write_csv(csv_path)
    return video, csv_path


def write_dataset(
    out_dir: str | os.PathLike[str],
    *,
    n_videos: int = 4,
    seconds: float = 60.0,
    seed: int = 0,
    fps: float = 30.0,
    polarity: str = "dark",
    size: tuple[int, int] = (320, 240),
    behaviour_weights: Mapping[str, float] | Sequence[float] | None = None,
    prefix: str = "session",
) -> list[tuple[Path, Path]]:
    """Write ``n_videos`` sessions as ``<prefix>_NNN.mp4`` plus ``<prefix>_NNN.truth.csv``.

    ``polarity`` "dark", "bright" or "both" (alternating). Also writes ``dataset.json`` with the
    behaviour names, the transition matrix and the settings. Returns (video, truth) paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [
        write_session(out, i, seconds=seconds, seed=seed, fps=fps, polarity=polarity, size=size,
                      behaviour_weights=behaviour_weights, prefix=prefix)
        for i in range(n_videos)
    ]  # fmt: skip
    manifest = {
        "behaviours": list(BEHAVIOURS),
        "transition": transition_matrix(behaviour_weights).round(6).tolist(),
        "mean_duration_s": [_PARAMS[b]["dur"] for b in BEHAVIOURS],
        "n_videos": n_videos,
        "seconds": seconds,
        "fps": fps,
        "seed": seed,
        "polarity": polarity,
        "size": list(size),
        "videos": [{"video": v.name, "truth": c.name} for v, c in written],
    }
    (out / "dataset.json").write_text(json.dumps(manifest, indent=2))
    return written
