"""Checks on an upload before anything decodes it: container magic bytes and the file name.

A file is refused at upload time when its first bytes are not one of the video containers the
pipeline reads, so lab notes renamed ``.mp4`` never reach FFmpeg. Names are cleaned for display
only: storage is content-addressed (``originals/<sha256>.<ext>``), never built from a name.
"""

from __future__ import annotations

import re
import unicodedata

from app.core.errors import BadInput

# How many leading bytes the sniffer needs (MPEG-TS needs two 188-byte packets).
HEAD_BYTES = 2 * 188 + 1

ACCEPTED = "MP4/MOV (ftyp), AVI (RIFF), Matroska/WebM (EBML), MPEG program or transport stream"

_MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot")

# Common non-video files, named in the refusal so people see what they actually sent.
_OTHER_KINDS: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"ID3", "an MP3 audio file"),
    (b"fLaC", "a FLAC audio file"),
    (b"OggS", "an Ogg file"),
)


def sniff_container(head: bytes) -> str | None:
    """The container family named by a file's first bytes, or None if it is not a video one."""
    if len(head) >= 8 and head[4:8] in _MP4_BOXES:
        return "mp4"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"AVIX"):
        return "avi"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"):
        return "mpeg-ps"
    if head[:1] == b"\x47" and (len(head) <= 188 or head[188:189] == b"\x47"):
        return "mpeg-ts"
    return None


def describe(head: bytes) -> str:
    """What the first bytes look like, in words, for an error message."""
    if not head:
        return "nothing (the file is empty, 0 bytes)"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "a WAV audio file"
    for magic, kind in _OTHER_KINDS:
        if head.startswith(magic):
            return kind
    sample = head[:64]
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if text and all(ch.isprintable() or ch in "\r\n\t" for ch in text):
        return "plain text"
    return f"unrecognised bytes ({sample[:8].hex(' ')})"


def check_video_head(head: bytes, filename: str) -> str:
    """Refuse (``BadInput``, HTTP 422) a file whose first bytes are not a video container."""
    kind = sniff_container(head)
    if kind is None:
        raise BadInput(
            f"{filename} is not a video file: its first bytes are {describe(head)}. "
            f"Accepted containers: {ACCEPTED}. Export the recording as MP4 or AVI and upload "
            "it again."
        )
    return kind


_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:]+")


def clean_filename(name: str | None, *, default: str = "video") -> str:
    """A display name: the last path component, no control or separator characters, no leading
    dots, at most 200 characters. ``../../etc/passwd.mp4`` becomes ``passwd.mp4``."""
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[/\\]", name)[-1]
    name = _UNSAFE.sub("_", name).strip().lstrip(".").strip()
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 200 - len(ext) - 1] + dot + ext) if dot and len(ext) <= 10 else name[:200]
    return name or default
