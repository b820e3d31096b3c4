"""Preprocessing: from a top-down mouse video to egocentric crops and per-frame pose scalars.

This is the step that makes syllables mean *what the mouse does* rather than *where it is*
(svae.md §7.2): the mouse is found against a background model, centred, rotated so that its nose
points to the right, and cut out as a small crop; position and heading leave the image and become
per-frame scalars.

Two streaming passes over the file, so a one-hour video never sits in memory:

1. **Background model** from 12-150 frames spread over the whole video (only sampled key-frame
   packets are decoded when there are enough key frames: a few percent of a full decode). The
   mouse is located in each sample and masked out, and each pixel takes the median of the
   samples where no mouse covered it, so a mouse that rests in one place for a while does not
   become part of the floor. The same samples decide the polarity (dark mouse on a light floor,
   or bright mouse as in depth video), the contrast, the noise level and the typical body
   length, which sets the search window, the tail-trimming kernel and the crop scale.
2. **Per frame** (decoding runs in a second thread): a global exposure change is undone first
   (auto exposure, lights; the samples of pass 1 get the same treatment); then the signed
   difference to the background in a window around the last position (a full-frame search at
   reduced resolution only when the mouse is lost, and every half second to notice other
   animals), threshold, opening (which also trims the tail), largest blob, intensity-weighted
   moments: centroid, body axis, length, width, area and the mass asymmetry along the axis;
   then the egocentric crop.

Head/tail: the body axis only gives the heading up to 180°. :func:`resolve_heading` picks the sign
per frame with a two-state Viterbi pass: flipping between consecutive frames costs as much as
the implied turn, and the direction of motion (mice mostly move forward) and the body's mass
asymmetry (the narrow nose end reaches further from the centroid; the convention is re-learned
from the moving frames of each video) vote.

Conventions: pixel coordinates with x to the right and y down; ``heading`` is
``atan2(dy, dx)`` in those coordinates (radians in (-π, π]), so positive angular velocity is a
clockwise turn on screen. Crops are ``(S, S)`` float32 in [0, 1], the mouse bright on dark
whatever the input polarity, nose towards +x (right), centred on the centroid.

Modules by stage: :mod:`.common` (what the stages pass on), :mod:`.background` (pass 1),
:mod:`.detect` (per frame), :mod:`.heading` (head/tail over the track), :mod:`.track` (pass 2
and the entry points). The names below are the package's public interface.
"""

from model.preprocess.background import build_background, sample_frames
from model.preprocess.common import (
    CROP_FRAMING,
    MIN_FRAMES,
    QUALITY_NAMES,
    QUALITY_NO_MOUSE,
    QUALITY_OK,
    QUALITY_SEVERAL_BLOBS,
    SCALAR_NAMES,
    BackgroundModel,
    Detection,
    Preprocessed,
    TooShortError,
    unit_float,
)
from model.preprocess.detect import count_blobs, detect_mouse, egocentric_crop, signed_difference
from model.preprocess.heading import resolve_heading
from model.preprocess.track import preprocess_frames, preprocess_video, tracking_frames

__all__ = [
    "CROP_FRAMING",
    "MIN_FRAMES",
    "QUALITY_NAMES",
    "QUALITY_NO_MOUSE",
    "QUALITY_OK",
    "QUALITY_SEVERAL_BLOBS",
    "SCALAR_NAMES",
    "BackgroundModel",
    "Detection",
    "Preprocessed",
    "TooShortError",
    "build_background",
    "count_blobs",
    "detect_mouse",
    "egocentric_crop",
    "preprocess_frames",
    "preprocess_video",
    "resolve_heading",
    "sample_frames",
    "signed_difference",
    "tracking_frames",
    "unit_float",
]
