"""The cohort comparison API and CSV exports on a database filled through the ORM (fast: no
video, no fit). Sessions, segmentations and bouts are simulated with a planted effect: the
"drug" cohort spends more time in syllable 1 and less in syllable 2, by the same amount, so
no other syllable's usage changes and exactly those two must be flagged."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy.orm import Session

from tests.conftest import backend_env, wait_for
from tests.factories import write_features

STATES = 6
FPS = 30.0
# Chance of each syllable starting the next bout, and mean bout length (frames).
CONTROL = np.array([0.2, 0.15, 0.25, 0.15, 0.15, 0.10])
PLANTED = {1: +0.12, 2: -0.12}
BOUT_FRAMES = np.array([15, 20, 20, 12, 25, 18])


def simulate_bouts(
    rng: np.random.Generator, probs: np.ndarray, frames: int
) -> list[tuple[int, int, int]]:
    """(start, end, syllable) bouts filling ``frames`` frames; syllables drawn i.i.d.
    (consecutive repeats allowed, so expected usage ∝ probs × bout length)."""
    out = []
    t = 0
    while t < frames:
        k = int(rng.choice(len(probs), p=probs))
        n = int(max(3, rng.poisson(BOUT_FRAMES[k])))
        out.append((t, min(frames, t + n), k))
        t += n
    return out


def populate(
    session_factory: Callable[[], Session],
    storage_root: Path,
    *,
    design: Sequence[tuple[str, int, int]] = (("saline", 5, 1), ("drug", 5, 1)),
    frames: int = 6000,
    seed: int = 0,
    effect: dict[int, float] | None = None,
    unsegmented: int = 0,
    ready: bool = True,
    name: str = "Drug study",
    control: np.ndarray = CONTROL,
    quality: Callable[[str, int], dict[str, Any]] | None = None,
    fps: dict[str, float] | None = None,
) -> dict[str, Any]:
    """An experiment with cohorts of animals (``(cohort, animals, sessions per animal)``),
    a ready model of ``STATES`` syllables and a segmentation of every session. Cohorts other
    than the first get ``effect`` (default :data:`PLANTED`) added to the bout probabilities
    (``control``). ``quality(cohort, animal)`` gives a session's recording conditions as ingest
    stores them, ``fps`` a cohort's frame rate. Returns ids."""
    from sqlalchemy import select

    import app.models  # noqa: F401 - every table mapped (sessions refer to jobs)
    from app.accounts.models import LabGroup
    from app.experiments.models import Cohort, Experiment, Subject, VideoSession
    from app.syllables.models import Bout, Segmentation, Syllable, SyllableModel
    from app.syllables.palette import syllable_color

    effect = PLANTED if effect is None else effect
    rng = np.random.default_rng(seed)
    with session_factory() as db:
        # In the lab group of the test's logged-in user (the first group made).
        group_id = db.scalar(select(LabGroup.id).order_by(LabGroup.id))
        experiment = Experiment(name=name, description="", group_id=group_id)
        db.add(experiment)
        db.flush()
        model = SyllableModel(
            experiment_id=experiment.id,
            version=1,
            status="ready" if ready else "training",
            states=STATES,
            states_used=STATES,
            settings={"states": STATES},
            session_ids=[],
            training_curve=[],
        )
        db.add(model)
        db.flush()
        for k in range(STATES):
            db.add(Syllable(model_id=model.id, index=k, color=syllable_color(k)))
        ids: dict[str, Any] = {"experiment": experiment.id, "model": model.id, "sessions": []}
        speed_by_cohort = {c: 40.0 + 20.0 * i for i, (c, _, _) in enumerate(design)}
        for ci, (cohort_name, n_animals, n_sessions) in enumerate(design):
            cohort = Cohort(experiment_id=experiment.id, name=cohort_name)
            db.add(cohort)
            db.flush()
            probs = np.asarray(control, dtype=np.float64).copy()
            if ci > 0:
                for k, d in effect.items():
                    probs[k] += d
            probs /= probs.sum()
            for a in range(n_animals):
                subject = Subject(
                    experiment_id=experiment.id,
                    cohort_id=cohort.id,
                    name=f"{cohort_name}-m{a + 1}",
                    sex="F" if a % 2 else "M",
                )
                db.add(subject)
                db.flush()
                for s in range(n_sessions):
                    rel = f"features/{uuid.uuid4().hex}.npz"
                    write_features(storage_root, rel, frames, speed_by_cohort[cohort_name], fps=FPS)
                    session = VideoSession(
                        experiment_id=experiment.id,
                        subject_id=subject.id,
                        original_filename=f"{subject.name}-{s}.mp4",
                        original_path=f"originals/{uuid.uuid4().hex}.mp4",
                        size_bytes=1000,
                        sha256=uuid.uuid4().hex,
                        frame_count=frames,
                        fps=(fps or {}).get(cohort_name, FPS),
                        duration_s=frames / FPS,
                        features_path=rel,
                        quality=quality(cohort_name, a) if quality else None,
                    )
                    db.add(session)
                    db.flush()
                    ids["sessions"].append(session.id)
                    if ci == 0 and a == 0 and s < unsegmented:
                        continue
                    bouts = simulate_bouts(rng, probs, frames)
                    seg = Segmentation(
                        session_id=session.id,
                        model_id=model.id,
                        frame_count=frames,
                        probability=np.ones(frames, np.float16).tobytes(),
                        usage=[0.0] * STATES,
                        transition_counts=[[0] * STATES for _ in range(STATES)],
                    )
                    db.add(seg)
                    db.flush()
                    db.add_all(
                        Bout(
                            segmentation_id=seg.id,
                            syllable=k,
                            start_frame=b0,
                            end_frame=b1,
                            start_s=b0 / FPS,
                            end_s=b1 / FPS,
                        )
                        for b0, b1, k in bouts
                    )
        db.commit()
    return ids


@pytest.fixture
def client_and_db(make_app: Any, tmp_path: Path) -> tuple[Any, Callable[[], Session], Path]:
    client = make_app(backend_env(tmp_path))
    app = client.app
    return client, app.state.session_factory, app.state.storage.abspath("")


def test_two_cohorts_flag_the_planted_syllables_and_pool_sessions(client_and_db):
    client, factory, root = client_and_db
    ids = populate(factory, root, design=(("saline", 5, 2), ("drug", 5, 1)))
    eid = ids["experiment"]
    r = client.get(f"/api/experiments/{eid}/comparison", params={"cohorts": "saline,drug"})
    assert r.status_code == 200, r.text
    data = r.json()
    assert [c["name"] for c in data["cohorts"]] == ["saline", "drug"]
    # Animals, not sessions: 5 saline animals with two sessions each.
    assert [(c["animals"], c["sessions"]) for c in data["cohorts"]] == [(5, 10), (5, 5)]
    assert len(data["animals"]) == 10
    saline = [a for a in data["animals"] if a["cohort"] == "saline"]
    assert all(len(a["session_ids"]) == 2 and a["frames"] == 12000 for a in saline)
    assert all(abs(sum(a["usage"]) - 1.0) < 1e-5 for a in data["animals"])

    flagged = {s["index"]: s for s in data["syllables"] if s["significant"]}
    assert set(flagged) == {1, 2}, [(s["index"], s["q_value"]) for s in data["syllables"]]
    assert flagged[1]["direction"] == "up" and flagged[2]["direction"] == "down"
    assert flagged[1]["effect_size"] == 1.0 and flagged[2]["effect_size"] == -1.0
    # Exact permutation p-value of perfect separation with 5 + 5 animals: 2 / C(10, 5).
    assert flagged[1]["p_value"] == pytest.approx(2 / 252)
    assert "exact permutation (252 assignments)" in flagged[1]["p_method"]
    assert flagged[1]["test"] == "Mann–Whitney U"
    # Bout lengths were not planted: tested per animal, nothing flagged.
    tested = [s for s in data["syllables"] if s["tested"]]
    assert all(s["duration_p_value"] is not None for s in tested)
    assert not any(s["duration_significant"] for s in tested)
    assert all(s["duration_q_value"] >= s["duration_p_value"] for s in tested)
    # Sorted by |effect size|: the planted syllables come first.
    assert {s["index"] for s in data["syllables"][:2]} == {1, 2}
    pair = flagged[1]["pairwise"][0]
    assert pair["ci_low"] < pair["mean_difference"] < pair["ci_high"] and pair["ci_low"] > 0
    assert flagged[1]["gallery_url"] == f"/models/{ids['model']}/syllables#syllable-1"

    fp = data["fingerprint"]
    assert fp["ran"] and fp["accuracy"] == 1.0 and fp["exact"]
    assert fp["p_value"] == pytest.approx(2 / 252) and fp["n_permutations"] == 252
    assert all(p["predicted"] == p["cohort"] for p in fp["predictions"])

    tr = data["transitions"]
    assert tr["tested"] > 0 and len(tr["cohorts"]) == 2
    # Bouts are drawn i.i.d., so the planted effect moves every transition *into* 1 (up) and
    # 2 (down); those lead the list (sorted by q, then |difference|).
    top = tr["results"][:6]
    assert all(t["target"] in (1, 2) for t in top), top
    assert all((t["difference"] > 0) == (t["target"] == 1) for t in top)
    assert all(t["q_value"] >= t["p_value"] for t in tr["results"])

    loco = {r["measure"]: r for r in data["locomotion"]}
    speed = loco["mean speed"]
    assert speed["means"] == {"saline": pytest.approx(40.0), "drug": pytest.approx(60.0)}
    assert speed["p_value"] == pytest.approx(2 / 252)
    dist = loco["distance travelled per minute"]["means"]["saline"]
    assert dist == pytest.approx(40.0 * 60 * (6000 - 1) / 6000, rel=1e-6)

    assert any("pooled" in w for w in data["warnings"])  # two sessions per saline animal
    methods = data["methods"]
    for phrase in ["Mann–Whitney", "Benjamini–Hochberg", "saline: 5 animals (10 sessions)",
                   "drug: 5 animals (5 sessions)", "model version 1", "2 of 6 syllables",
                   "Cliff's delta", "bootstrap"]:  # fmt: skip
        assert phrase in methods, (phrase, methods)

    # Order matters: the reference cohort first flips the direction.
    flipped = client.get(
        f"/api/experiments/{eid}/comparison", params={"cohorts": "drug,saline"}
    ).json()
    s1 = next(s for s in flipped["syllables"] if s["index"] == 1)
    assert s1["direction"] == "down" and s1["effect_size"] == -1.0


def test_csv_exports(client_and_db):
    client, factory, root = client_and_db
    ids = populate(factory, root, design=(("saline", 4, 2), ("drug", 4, 1)), frames=3000)
    eid = ids["experiment"]
    base = f"/api/experiments/{eid}/comparison"

    r = client.get(f"{base}/usage.csv", params={"cohorts": "saline,drug"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 8 * STATES  # one row per animal x syllable
    assert {"subject", "cohort", "sex", "syllable", "usage_fraction", "bouts_per_min",
            "median_duration_s", "distance_px", "session_ids"} <= set(rows[0])  # fmt: skip
    by_animal: dict[str, float] = {}
    for row in rows:
        by_animal[row["subject"]] = by_animal.get(row["subject"], 0.0) + float(
            row["usage_fraction"]
        )
        if row["cohort"] == "saline":
            assert row["sessions"] == "2" and row["frames"] == "6000"
    assert len(by_animal) == 8 and all(abs(v - 1) < 1e-4 for v in by_animal.values())
    # Motion within each syllable, per animal: these mice move at their cohort's constant speed
    # (no scale, no body size recorded: in video pixels).
    assert {r["kinematics_unit"] for r in rows} == {"px"}
    speeds = {(r["cohort"], float(r["speed_in_syllable"])) for r in rows if r["speed_in_syllable"]}
    assert speeds == {("saline", 40.0), ("drug", 60.0)}

    stats_rows = list(csv.DictReader(io.StringIO(client.get(f"{base}/statistics.csv").text)))
    assert {r["syllable"] for r in stats_rows} == {str(k) for k in range(STATES)}
    assert {
        "p_value",
        "q_value",
        "cliffs_delta",
        "ci_low",
        "ci_high",
        "mean_usage_drug",
        "duration_q_value",
    } <= set(stats_rows[0])
    # Cohorts default to all of them, in name order: drug first.
    assert stats_rows[0]["cohort_a"] == "drug" and stats_rows[0]["cohort_b"] == "saline"

    tr = client.get(f"{base}/transitions.csv", params={"cohorts": "saline,drug"})
    tr_rows = list(csv.DictReader(io.StringIO(tr.text)))
    assert {r["cohort"] for r in tr_rows} == {"saline", "drug"}
    for cohort in ("saline", "drug"):
        mine = [r for r in tr_rows if r["cohort"] == cohort]
        for k in range(STATES):
            row_sum = sum(float(r["probability_with_self"]) for r in mine
                          if r["from_syllable"] == str(k))  # fmt: skip
            assert row_sum == pytest.approx(1.0, abs=1e-4)
            no_self = [float(r["probability_without_self"]) for r in mine
                       if r["from_syllable"] == str(k) and r["to_syllable"] != str(k)]  # fmt: skip
            assert sum(no_self) == pytest.approx(1.0, abs=1e-4)


def test_experiment_zip_during_a_refit_holds_one_model_only(client_and_db):
    """While a new model version is segmenting the sessions, the experiment's ZIP holds that
    model's tables and only the sessions it has segmented, never another model's ethograms."""
    import json
    import zipfile

    from app.syllables.models import Bout, Segmentation, Syllable, SyllableModel
    from app.syllables.palette import syllable_color

    client, factory, root = client_and_db
    ids = populate(factory, root, design=(("saline", 2, 1), ("drug", 2, 1)), frames=300)
    eid, first = ids["experiment"], ids["sessions"][0]
    with factory() as db:
        newer = SyllableModel(
            experiment_id=eid, version=2, status="ready", states=STATES, settings={},
            session_ids=ids["sessions"], training_curve=[],
        )  # fmt: skip
        db.add(newer)
        db.flush()
        db.add_all(Syllable(model_id=newer.id, index=k, color=syllable_color(k))
                   for k in range(STATES))  # fmt: skip
        seg = Segmentation(
            session_id=first, model_id=newer.id, frame_count=300,
            probability=np.ones(300, np.float16).tobytes(), usage=[0.0] * STATES,
            transition_counts=[[0] * STATES] * STATES,
        )  # fmt: skip
        db.add(seg)
        db.flush()
        db.add(Bout(segmentation_id=seg.id, syllable=STATES - 1, start_frame=0, end_frame=300,
                    start_s=0.0, end_s=300 / FPS))  # fmt: skip
        db.commit()
        newer_id = newer.id

    archive = client.get(f"/api/experiments/{eid}/export.zip")
    assert archive.status_code == 200
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zf:
        meta = json.loads(zf.read("model.json"))
        assert meta["id"] == newer_id and meta["version"] == 2
        assert meta["sessions_segmented"] == [first]
        assert meta["sessions_not_yet_segmented"] == sorted(ids["sessions"][1:])
        ethograms = [n for n in zf.namelist() if n.endswith(".ethogram.csv")]
        assert len(ethograms) == 1 and f"session_{first}_" in ethograms[0]
        rows = list(csv.DictReader(io.StringIO(zf.read(ethograms[0]).decode())))
        assert len(rows) == 300 and {r["syllable"] for r in rows} == {str(STATES - 1)}
        bouts = list(csv.DictReader(io.StringIO(zf.read(ethograms[0].replace(
            ".ethogram.", ".bouts.")).decode())))  # fmt: skip
        assert len(bouts) == 1
        # The sessions table still lists every session, with its metadata.
        assert len(list(csv.DictReader(io.StringIO(zf.read("sessions.csv").decode())))) == 4


def test_three_cohorts_use_kruskal_wallis_and_dunn(client_and_db):
    client, factory, root = client_and_db
    ids = populate(factory, root, design=(("a", 4, 1), ("b", 4, 1), ("c", 4, 1)), frames=4000)
    data = client.get(f"/api/experiments/{ids['experiment']}/comparison").json()
    s1 = next(s for s in data["syllables"] if s["index"] == 1)
    assert s1["test"] == "Kruskal–Wallis"
    assert [(p["a"], p["b"]) for p in s1["pairwise"]] == [("a", "b"), ("a", "c"), ("b", "c")]
    assert all(p["dunn_p_adjusted"] >= p["dunn_p"] for p in s1["pairwise"])
    # b and c received the same effect: Dunn sees a vs b and a vs c, not b vs c.
    ab, ac, bc = s1["pairwise"]
    assert ab["dunn_z"] > 0 and ac["dunn_z"] > 0 and abs(bc["dunn_z"]) < abs(ab["dunn_z"])
    assert "Dunn" in data["methods"] and "Kruskal–Wallis" in data["methods"]
    assert data["fingerprint"]["ran"] and not data["fingerprint"]["exact"]  # 34,650 > 5,000


def test_warnings_when_the_design_cannot_support_a_claim(client_and_db):
    client, factory, root = client_and_db
    ids = populate(
        factory, root, design=(("saline", 2, 2), ("drug", 2, 1)), frames=2000, unsegmented=1
    )
    data = client.get(f"/api/experiments/{ids['experiment']}/comparison").json()
    text = " ".join(data["warnings"])
    assert "Fewer than 3 animals" in text
    assert "not segmented by model v1" in text and f"ids {ids['sessions'][0]}" in text
    assert "smallest p-value any test can give is 0.333" in text
    assert "no animal or no cohort" not in text
    assert not any(s["significant"] for s in data["syllables"])
    assert data["fingerprint"]["ran"]  # two animals per cohort are enough to run it

    one = client.get(
        f"/api/experiments/{ids['experiment']}/comparison", params={"cohorts": "drug"}
    ).json()
    assert any("Only one cohort" in w for w in one["warnings"])
    assert not any(s["tested"] for s in one["syllables"])
    assert not one["fingerprint"]["ran"]
    assert "No statistical test was run" in one["methods"]


def test_errors_in_words(client_and_db):
    client, factory, root = client_and_db
    ids = populate(factory, root, design=(("saline", 3, 1), ("drug", 3, 1)), frames=600)
    eid = ids["experiment"]
    r = client.get(f"/api/experiments/{eid}/comparison", params={"cohorts": "saline,vehicle"})
    assert r.status_code == 422 and "'vehicle'" in r.json()["detail"]
    assert "'drug'" in r.json()["detail"]
    assert client.get("/api/experiments/9999/comparison").status_code == 404
    assert client.get(f"/api/experiments/{eid}/comparison", params={"alpha": 2}).status_code == 422
    from app.experiments.models import VideoSession

    with factory() as db:  # a video nobody assigned to an animal
        db.add(VideoSession(experiment_id=eid, original_filename="x.mp4", original_path="x",
                            size_bytes=1, sha256="0" * 64))  # fmt: skip
        db.commit()
    warned = client.get(f"/api/experiments/{eid}/comparison").json()["warnings"]
    assert any("1 session(s) have no animal or no cohort" in w for w in warned)
    untrained = populate(factory, root, design=(("x", 1, 1),), ready=False, name="Untrained")
    r = client.get(f"/api/experiments/{untrained['experiment']}/comparison")
    assert r.status_code == 409 and "no fitted model" in r.json()["detail"]
    page = client.get(f"/experiments/{eid}/comparison?cohorts=saline,drug")
    assert page.status_code == 200 and "comparison.js" in page.text
    assert "/static/vendor/plotly.min.js" in page.text
    assert client.get("/experiments/9999/comparison").status_code == 404


@pytest.mark.slow
def test_comparison_of_a_real_pipeline_run(make_app, workers, tmp_path):
    """Synthetic videos of two cohorts (the drug cohort's generator grooms and sniffs more,
    pauses less) go through upload, ingest, fit and segmentation with a real worker; the
    comparison reads the real bouts and tracking. Two animals per cohort (one with two
    sessions) keep this short, so it checks the plumbing and the warnings, not power
    (``bench/power.py`` measures that)."""
    from model.synth import write_dataset

    env = backend_env(tmp_path)
    client = make_app(env)
    eid = client.post("/api/experiments", json={"name": "Synthetic drug"}).json()["id"]
    workers.start(env)
    planted = {"groom": 3.0, "sniff": 3.0, "pause": 0.2}
    uploads = []
    for cohort, weights, seed in (("saline", None, 1), ("drug", planted, 2)):
        pairs = write_dataset(
            tmp_path / cohort, n_videos=3, seconds=6, seed=seed, behaviour_weights=weights
        )
        for i, (video, _truth) in enumerate(pairs):
            subject = f"{cohort}-{min(i, 1)}"  # videos 1 and 2: two sessions of one animal
            with video.open("rb") as fh:
                r = client.post(
                    f"/api/experiments/{eid}/sessions",
                    files={"file": (video.name, fh, "video/mp4")},
                    data={"subject": subject, "cohort": cohort},
                )
            assert r.status_code == 201, r.text
            uploads.append(r.json()["id"])

    def all_ready() -> bool:
        statuses = [client.get(f"/api/sessions/{s}").json()["status"] for s in uploads]
        assert "failed" not in statuses, workers.logs()[-3000:]
        return all(s == "ready" for s in statuses)

    wait_for(all_ready, timeout=240, what="ingest")
    early = client.get(f"/api/experiments/{eid}/comparison")
    assert early.status_code == 409  # no model yet
    fit = client.post(f"/api/experiments/{eid}/fit", json={"states": 6, "epochs": 1})
    assert fit.status_code == 202, fit.text

    def segmented() -> dict[str, Any] | None:
        r = client.get(f"/api/experiments/{eid}/comparison", params={"cohorts": "saline,drug"})
        if r.status_code != 200:
            return None
        data = r.json()
        return None if any("not segmented" in w for w in data["warnings"]) else data

    data = wait_for(segmented, timeout=420, interval=2, what="fit and segmentation")
    assert [(c["animals"], c["sessions"]) for c in data["cohorts"]] == [(2, 3), (2, 3)]
    for animal in data["animals"]:
        assert abs(sum(animal["usage"]) - 1) < 1e-5
        assert animal["distance_px"] > 0 and animal["mean_speed_px_s"] > 0
    two = [a for a in data["animals"] if len(a["session_ids"]) == 2]
    assert len(two) == 2 and all(a["frames"] == 360 for a in two)
    text = " ".join(data["warnings"])
    assert "Fewer than 3 animals" in text and "smallest p-value" in text
    assert not any(s["significant"] for s in data["syllables"])
    assert any(s["tested"] for s in data["syllables"])
    assert "model version 1" in data["methods"]
    rows = list(
        csv.DictReader(io.StringIO(client.get(f"/api/experiments/{eid}/comparison/usage.csv").text))
    )
    assert len(rows) == 4 * 6


def _recorded(body: dict[str, float], fraction_no_mouse: dict[str, float] | None = None):
    """Recording conditions per session as ingest stores them, with a little spread between
    animals; ``body`` is each cohort's body length in the video (px)."""

    def quality(cohort: str, animal: int) -> dict[str, Any]:
        jitter = 1.0 + 0.01 * ((animal % 3) - 1)
        return {
            "median_body_length_px": body[cohort] * jitter,
            "floor_brightness": 170.0 + animal,
            "contrast": 120.0 * jitter,
            "fraction_no_mouse": (fraction_no_mouse or {}).get(cohort, 0.0),
            "fraction_several_blobs": 0.0,
            "polarity": "dark",
        }

    return quality


def test_cohorts_recorded_alike_raise_no_recording_warning(client_and_db):
    client, factory, root = client_and_db
    ids = populate(factory, root, quality=_recorded({"saline": 28.0, "drug": 28.3}))
    data = client.get(f"/api/experiments/{ids['experiment']}/comparison").json()
    checks = {c["condition"]: c for c in data["nuisances"]}
    assert set(checks) == {"body_size", "floor_brightness", "contrast", "fps",
                           "fraction_no_mouse", "fraction_several_blobs"}  # fmt: skip
    assert not any(c["differs"] for c in checks.values()), checks
    assert checks["body_size"]["cohort_medians"]["drug"] == pytest.approx(28.3)
    text = " ".join(data["warnings"])
    assert "differ in" not in text and "almost only" not in text
    assert "Recording conditions were compared" in data["methods"]
    assert "did not differ" in data["methods"]


def test_cohorts_recorded_differently_are_warned_in_words(client_and_db):
    """Drug animals 15 % larger in the video, filmed at 15 fps, with more frames without a
    tracked mouse: each is said in words, with the syllables to check (the planted 1 and 2,
    which differ significantly), in the warnings and in the methods text."""
    client, factory, root = client_and_db
    ids = populate(
        factory,
        root,
        quality=_recorded({"saline": 28.0, "drug": 32.2}, {"drug": 0.12}),
        fps={"drug": 15.0},
    )
    data = client.get(f"/api/experiments/{ids['experiment']}/comparison").json()
    differs = {c["condition"] for c in data["nuisances"] if c["differs"]}
    assert differs == {"body_size", "fps", "fraction_no_mouse"}
    text = "\n".join(data["warnings"])
    assert "These cohorts differ in the animals' body size in the video" in text
    assert "(drug 32.2 px, saline 28 px; 15% apart)" in text
    assert "These cohorts differ in the frame rate (drug 15 frames/s, saline 30 frames/s)" in text
    assert "share of frames without a tracked mouse" in text
    assert text.count("Check syllable 1 and syllable 2") == 1
    assert "differed in the animals' body size in the video, the frame rate" in data["methods"]


def test_a_syllable_used_by_one_cohort_only_is_warned(client_and_db):
    client, factory, root = client_and_db
    control = CONTROL.copy()
    control[5] = 0.0
    ids = populate(factory, root, control=control, effect={5: 0.15},
                   quality=_recorded({"saline": 28.0, "drug": 28.0}))
    data = client.get(f"/api/experiments/{ids['experiment']}/comparison").json()
    exclusive = [w for w in data["warnings"] if "almost only" in w]
    assert len(exclusive) == 1 and "syllable 5 is used almost only by 'drug' (100%" in exclusive[0]
    assert not any(c["differs"] for c in data["nuisances"])
