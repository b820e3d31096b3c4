"""JSON API for a lab's own labels and their agreement with syllables."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile, status

from app.annotations import service
from app.annotations.models import Annotation
from app.annotations.schemas import AgreementPublic, AnnotationPublic
from app.core.downloads import attachment
from app.core.errors import TooLarge
from app.deps import DbSession, StorageDep
from app.experiments import service as experiments
from app.uploads.validation import clean_filename

router = APIRouter(prefix="/api", tags=["labels and agreement"])
# A model id as the database stores it (a 4-byte integer on PostgreSQL).
ModelId = Annotated[int | None, Query(ge=1, le=2**31 - 1, description="default: newest ready")]


def annotation_public(annotation: Annotation) -> AnnotationPublic:
    return AnnotationPublic.model_validate(annotation, from_attributes=True)


def agreement_public(result: service.AgreementResult) -> AgreementPublic:
    a = result.agreement
    return AgreementPublic(
        model_id=result.model.id,
        model_version=result.model.version,
        rater=result.rater,
        session_ids=result.session_ids,
        annotation_ids=result.annotation_ids,
        frames=a.frames,
        syllables=a.syllables,
        syllable_labels=[result.names.get(k, f"syllable {k}") for k in a.syllables],
        behaviours=a.behaviours,
        contingency=a.contingency.tolist(),
        nmi=a.nmi,
        ari=a.ari,
        accuracy=a.accuracy,
        mapping={str(k): v for k, v in a.mapping.items()},
        f1=a.f1,
        boundary_tolerance_frames=a.boundary_tolerance,
        boundary_tolerance_s=round(a.boundary_tolerance / result.fps, 4),
        boundary_agreement=a.boundary_agreement,
        boundary_chance=a.boundary_chance,
        human_boundaries=a.human_boundaries,
    )


@router.post("/sessions/{session_id}/annotations", status_code=status.HTTP_201_CREATED)
def upload_annotation(
    session_id: int,
    db: DbSession,
    storage: StorageDep,
    file: Annotated[
        UploadFile,
        File(description="frame,behaviour or start_s,end_s,behaviour CSV, or BORIS tabular events"),
    ],
    rater: Annotated[str, Form(max_length=200, description="who scored it")] = "",
) -> AnnotationPublic:
    """Store a label file of this session; 422 with the line and column of the first problem.

    A plain function, so it runs in a worker thread: reading the session's frame times may
    fetch its feature file from a bucket, which must not stall the event loop."""
    session = experiments.get_session_or_raise(db, session_id)
    data = file.file.read(service.MAX_BYTES + 1)  # already received: a spooled file
    if len(data) > service.MAX_BYTES:
        raise TooLarge(f"The label file is larger than {service.MAX_BYTES // 2**20} MB.")
    annotation = service.add_annotation(
        db, storage, session, filename=clean_filename(file.filename), data=data, rater=rater
    )
    db.commit()
    return annotation_public(annotation)


@router.get("/sessions/{session_id}/annotations")
def list_annotations(session_id: int, db: DbSession) -> list[AnnotationPublic]:
    experiments.get_session_or_raise(db, session_id)
    return [annotation_public(a) for a in service.list_annotations(db, session_id)]


@router.get("/annotations/{annotation_id}/file")
def annotation_file(annotation_id: int, db: DbSession) -> Response:
    """The label file exactly as uploaded."""
    annotation = service.get_annotation_or_raise(db, annotation_id)
    return Response(
        annotation.source,
        media_type="application/octet-stream",
        headers=attachment(annotation.filename),
    )


@router.delete("/annotations/{annotation_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_annotation(annotation_id: int, db: DbSession) -> None:
    """Removes the label file only; segmentations are never touched by labels."""
    db.delete(service.get_annotation_or_raise(db, annotation_id))
    db.commit()


@router.get("/annotations/{annotation_id}/agreement")
def annotation_agreement(
    annotation_id: int, db: DbSession, model_id: ModelId = None
) -> AgreementPublic:
    """This label file against a model's syllables (default: the newest ready model)."""
    annotation = service.get_annotation_or_raise(db, annotation_id)
    return agreement_public(service.session_agreement(db, annotation, model_id))


@router.get("/experiments/{experiment_id}/agreement")
def experiment_agreement(
    experiment_id: int, db: DbSession, model_id: ModelId = None
) -> list[AgreementPublic]:
    """Per rater, all their labelled sessions pooled, against one model's syllables."""
    experiments.get_experiment_or_raise(db, experiment_id)
    return [agreement_public(r) for r in service.experiment_agreement(db, experiment_id, model_id)]
