"""Container sniffing and file-name cleaning for uploads (no decoding involved)."""

from __future__ import annotations

import pytest

from app.core.errors import BadInput
from app.uploads.validation import check_video_head, clean_filename, describe, sniff_container


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00", "mp4"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00", "mp4"),  # QuickTime MOV
        (b"\x00\x00\x00\x08wide\x00\x00\x00\x00mdat", "mp4"),
        (b"RIFF\x00\x10\x00\x00AVI LIST", "avi"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01", "matroska"),
        (b"\x00\x00\x01\xba\x44\x00\x04\x00", "mpeg-ps"),
        (b"\x47\x40\x00\x10" + bytes(184) + b"\x47\x40", "mpeg-ts"),
    ],
)
def test_video_containers_are_recognised(head: bytes, kind: str) -> None:
    assert sniff_container(head) == kind
    assert check_video_head(head, "v.mp4") == kind


@pytest.mark.parametrize(
    ("head", "words"),
    [
        (b"", "empty"),
        (b"these are my notes\n", "plain text"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "PNG image"),
        (b"%PDF-1.7\n", "PDF document"),
        (b"RIFF\x00\x10\x00\x00WAVEfmt ", "WAV audio"),
        (b"\x47" + bytes(187) + b"\x00", "unrecognised bytes"),  # one 0x47 is not a stream
        (b"\xde\xad\xbe\xef" * 4, "unrecognised bytes (de ad be ef"),
    ],
)
def test_other_files_are_refused_saying_what_they_are(head: bytes, words: str) -> None:
    assert sniff_container(head) is None
    assert words in describe(head)
    with pytest.raises(BadInput) as refused:
        check_video_head(head, "mouse1.mp4")
    message = str(refused.value)
    assert "mouse1.mp4 is not a video file" in message and words in message
    assert "MP4/MOV" in message and "AVI" in message  # what is accepted


@pytest.mark.parametrize(
    ("name", "clean"),
    [
        ("../../etc/passwd.mp4", "passwd.mp4"),
        ("..\\..\\windows\\system32\\x.avi", "x.avi"),
        ("/abs/path/mouse 1.mp4", "mouse 1.mp4"),
        ("..", "video"),
        ("", "video"),
        (None, "video"),
        (".hidden.mp4", "hidden.mp4"),
        ("bad\x00name\n.mp4", "bad_name_.mp4"),
        ("C:evil.mp4", "C_evil.mp4"),
    ],
)
def test_file_names_are_cleaned(name: str | None, clean: str) -> None:
    assert clean_filename(name) == clean


def test_long_names_keep_their_extension() -> None:
    cleaned = clean_filename("x" * 400 + ".mp4")
    assert len(cleaned) == 200 and cleaned.endswith(".mp4")
