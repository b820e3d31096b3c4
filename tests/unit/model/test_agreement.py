"""Reading a lab's label files, and agreement of syllables with them."""

from __future__ import annotations

import numpy as np
import pytest

from model.agreement import UNSCORED, AnnotationError, agreement, parse_annotations
from model.ethogram import boris_chunks, bouts_from_labels
from model.metrics import ari, nmi

TIMES = np.arange(100) / 10.0  # 100 frames at 10 fps


def test_frame_rows_label_their_frames_and_leave_the_rest_unscored() -> None:
    text = "frame,behaviour\n0,walk\n1,walk\n2,groom\n5,\n"
    labels = parse_annotations(text, times=TIMES)
    assert labels.format == "frames"
    assert labels.behaviours == ["walk", "groom"]
    assert labels.labels[:4].tolist() == [0, 0, 1, UNSCORED]
    assert labels.scored_frames == 3


def test_a_name_column_is_read_before_a_number_column() -> None:
    text = "frame,time_s,behaviour,behaviour_name\n0,0.0,3,groom\n1,0.1,1,walk\n"
    assert parse_annotations(text, times=TIMES).behaviours == ["groom", "walk"]


def test_intervals_cover_the_frames_whose_time_falls_inside() -> None:
    text = "start_s,end_s,behavior\n0.0,0.25,rear\n0.25,1.0,walk\n"
    labels = parse_annotations(text.encode(), times=TIMES)
    # frames at 0.0, 0.1, 0.2 are rear; 0.3 .. 0.9 walk; 1.0 onwards unscored
    assert labels.labels[:3].tolist() == [0, 0, 0]
    assert labels.labels[3:10].tolist() == [1] * 7
    assert labels.labels[10] == UNSCORED


def test_seconds_rounded_in_a_file_stay_on_their_frame() -> None:
    times = np.arange(300) / 30.0
    truth = np.repeat(np.arange(30) % 3, 10)
    rows = ["start_s,end_s,behaviour"] + [
        f"{s / 30:.3f},{e / 30:.3f},b{k}"
        for s, e, k in [(i * 10, i * 10 + 10, i % 3) for i in range(30)]
    ]
    labels = parse_annotations("\n".join(rows), times=times)
    assert labels.labels.tolist() == truth.tolist()


BORIS_8 = (
    "Observation id\tObservation date\tSubject\tBehavior\tBehavioral category\t"
    "Behavior type\tTime\tMedia file name\n"
    "obs1\t2026-01-01\tmouse 1\twalk\t\tSTART\t0.000\tm1.mp4\n"
    "obs1\t2026-01-01\tmouse 1\twalk\t\tSTOP\t2.000\tm1.mp4\n"
    "obs1\t2026-01-01\tmouse 1\tsniff\t\tPOINT\t2.500\tm1.mp4\n"
    "obs1\t2026-01-01\tmouse 1\tgroom\t\tSTART\t3.000\tm1.mp4\n"
    "obs1\t2026-01-01\tmouse 1\tgroom\t\tSTOP\t5.000\tm1.mp4\n"
)

BORIS_7 = (
    "Observation id,obs1\n"
    "Observation date,2026-01-01\n"
    "Description,\n"
    "Time offset (s),0.000\n"
    "\n"
    "Time,Media file path,Total length,FPS,Subject,Behavior,Behavioral category,Comment,Status\n"
    "1.0,m1.mp4,10,10,,rear,,,START\n"
    "1.5,m1.mp4,10,10,,rear,,,STOP\n"
)


def test_boris_tabular_events_pair_start_and_stop() -> None:
    labels = parse_annotations(BORIS_8, times=TIMES)
    assert labels.format == "boris"
    assert labels.behaviours == ["walk", "groom"]
    assert np.all(labels.labels[0:20] == 0)
    assert np.all(labels.labels[20:30] == UNSCORED)
    assert np.all(labels.labels[30:50] == 1)
    assert labels.notes == ["1 point events have no duration and were left out."]

    older = parse_annotations(BORIS_7, times=TIMES)
    assert older.behaviours == ["rear"]
    assert np.flatnonzero(older.labels == 0).tolist() == [10, 11, 12, 13, 14]


@pytest.mark.parametrize(
    ("text", "line", "column", "words"),
    [
        ("time,what\n1,walk\n", 1, None, "is not one Syllabary reads"),
        ("frame,behaviour\n0,walk\nten,walk\n", 3, "frame", "not a frame number"),
        ("frame,behaviour\n0,walk\n100,walk\n", 3, "frame", "frames 0 to 99"),
        ("frame,behaviour\n4,walk\n4,groom\n", 3, "frame", "also labelled 'walk' on line 2"),
        ("start_s,end_s,behaviour\n0,1,walk\n2,x,walk\n", 3, "end_s", "not a number"),
        ("start_s,end_s,behaviour\n1,0.5,walk\n", 2, "end_s", "ends (0.5 s) before"),
        (
            "start_s,end_s,behaviour\n0,1,walk\n0.5,2,groom\n",
            3,
            None,
            "overlaps the behaviour labelled on line 2",
        ),
        ("start_s,end_s,behaviour\n50,60,walk\n", 2, None, "after the video ends"),
        (BORIS_8.replace("STOP\t2.000", "START\t2.000"), 3, "Behavior type", "starts again"),
        (BORIS_8.replace("walk\t\tSTART", "run\t\tSTART"), 3, "Behavior type", "never started"),
        ("Time,Behavior,Status\n1,walk,START\n", 2, None, "never stops"),
        ("Time,Behavior,Status\n1,walk,BEGIN\n", 2, "Status", "not START, STOP or POINT"),
        (b"\xff\xfe\xff\xd8\x00\xd8", None, None, "not text"),
    ],
)
def test_bad_files_say_where_and_what(
    text: str | bytes, line: int | None, column: str | None, words: str
) -> None:
    with pytest.raises(AnnotationError) as caught:
        parse_annotations(text, times=TIMES)
    assert caught.value.line == line
    assert caught.value.column == column
    assert words in str(caught.value)
    if line is not None:
        assert str(caught.value).startswith(f"line {line}")


def test_two_subjects_in_one_file_are_refused() -> None:
    two = BORIS_8.replace("mouse 1\tgroom", "mouse 2\tgroom")
    with pytest.raises(AnnotationError, match="2 subjects"):
        parse_annotations(two, times=TIMES)


def test_a_file_that_labels_nothing_is_refused() -> None:
    with pytest.raises(AnnotationError, match="no frame of this video is labelled"):
        parse_annotations("frame,behaviour\n3,\n", times=TIMES)


def test_a_relabelled_copy_agrees_perfectly() -> None:
    rng = np.random.default_rng(0)
    truth = np.repeat(rng.integers(0, 4, size=20), 5)
    syllables = (truth * 7 + 3) % 11  # another name for each behaviour
    result = agreement([(syllables, truth)], ["a", "b", "c", "d"], tolerance=0)
    assert result.nmi == pytest.approx(1.0)
    assert result.ari == pytest.approx(1.0)
    assert result.accuracy == 1.0
    assert all(v == 1.0 for v in result.f1.values())
    assert result.boundary_agreement == 1.0


def test_agreement_by_hand() -> None:
    # behaviour: a a a a b b b b -  (last frame unscored)
    # syllable:  0 0 1 1 1 2 2 2 2
    label = np.array([0, 0, 0, 0, 1, 1, 1, 1, UNSCORED])
    syllable = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2])
    result = agreement([(syllable, label)], ["a", "b"], tolerance=1)
    assert result.frames == 8
    assert result.contingency.tolist() == [[2, 0], [2, 1], [0, 3]]
    assert result.mapping == {0: "a", 1: "a", 2: "b"}
    assert result.accuracy == 7 / 8
    # a: tp 4, predicted 5, actual 4 -> 8/9; b: tp 3, predicted 3, actual 4 -> 6/7
    assert result.f1 == {"a": pytest.approx(8 / 9), "b": pytest.approx(6 / 7)}
    # one human boundary (before frame 4); syllable changes before frames 2 and 5: 5 is near
    assert result.human_boundaries == 1 and result.boundary_agreement == 1.0
    # scored pairs end at frames 1..7; near a syllable change (±1 of 2 or 5): 1,2,3,4,5,6
    assert result.boundary_chance == pytest.approx(6 / 7)
    assert result.ari == pytest.approx(ari(label[:8], syllable[:8]), abs=1e-12)
    assert result.nmi == pytest.approx(nmi(label[:8], syllable[:8]), abs=1e-12)


def test_sessions_pool_frames_but_not_boundaries() -> None:
    a = (np.array([0, 0, 0]), np.array([0, 0, 0]))
    b = (np.array([1, 1, 1]), np.array([1, 1, 1]))
    result = agreement([a, b], ["x", "y"], tolerance=0)
    # the join between sessions is no boundary of either kind
    assert result.human_boundaries == 0
    assert result.frames == 6 and result.accuracy == 1.0


def test_nothing_in_common_is_an_error() -> None:
    with pytest.raises(ValueError, match="no frame is both labelled and segmented"):
        agreement([(np.array([-1, -1]), np.array([0, 0]))], ["x"], tolerance=0)


def test_the_boris_export_of_bouts_reads_back_as_the_same_frames() -> None:
    rng = np.random.default_rng(5)
    times = np.arange(3000) / 30.0
    labels = np.repeat(rng.integers(0, 5, size=200), rng.integers(3, 27, size=200))[:3000]
    labels = np.pad(labels, (0, 3000 - labels.size), mode="edge")
    names = {0: "rest", 1: "walk", 2: "groom", 3: "rear", 4: "syllable 4"}
    text = "".join(
        boris_chunks(bouts=bouts_from_labels(labels), times=times, fps=30.0, names=names,
                     observation="s1", media="m1.mp4", subject="m1", chunk_rows=37)
    )  # fmt: skip
    read = parse_annotations(text, times=times)
    assert read.format == "boris"
    assert [read.behaviours[k] for k in read.labels] == [names[int(k)] for k in labels]


def test_a_gap_in_the_segmentation_is_no_syllable_boundary() -> None:
    syllable = np.array([0, 0, 0, -1, -1, 0, 0, 0, 0, 0])
    label = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
    result = agreement([(syllable, label)], ["a", "b"], tolerance=1)
    assert result.human_boundaries == 1 and result.boundary_agreement == 0.0
    assert result.boundary_chance == 0.0


def test_an_interval_in_the_last_frame_is_within_the_video() -> None:
    times = np.arange(10) / 10.0
    labels = parse_annotations("start_s,end_s,behaviour\n0,0.5,a\n0.9,1.0,b\n", times=times)
    assert labels.labels.tolist() == [0] * 5 + [UNSCORED] * 4 + [1]
    with pytest.raises(AnnotationError, match="after the video ends"):
        parse_annotations("start_s,end_s,behaviour\n1.0,1.5,a\n", times=times)


def test_a_windows_spreadsheet_csv_reads() -> None:
    text = "frame,behaviour\n0,marché\n1,toilettage\n".encode("cp1252")
    assert parse_annotations(text, times=TIMES).behaviours == ["marché", "toilettage"]


def test_boris_stop_before_start_and_two_subjects_say_so() -> None:
    backwards = "Time,Behavior,Status\n2.0,walk,START\n1.0,walk,STOP\n"
    with pytest.raises(AnnotationError, match=r"stops at 1\.0 s, before it started") as caught:
        parse_annotations(backwards, times=TIMES)
    assert caught.value.line == 3
    both = "Time,Subject,Behavior,Status\n1,m1,groom,START\n1,m2,groom,START\n"
    with pytest.raises(AnnotationError, match="2 subjects"):
        parse_annotations(both, times=TIMES)
