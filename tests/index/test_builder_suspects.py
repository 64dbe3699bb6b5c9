"""A wrong photo in a served gallery: the re-index finds it, reports it with the member it looks like, sends it
to the review queue and leaves it out of the version (real models, real SQLite, the demo gallery)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select, update

from lookalike.db import repository as repo
from lookalike.db.engine import session_scope
from lookalike.db.models import Member, Photo
from lookalike.index.builder import reindex_group
from lookalike.pipeline.pipeline import Pipeline
from tests.conftest import DEMO_GROUP, make_settings


def test_a_photo_filed_under_the_wrong_member_is_flagged_and_left_out(demo_copy: Path, pipeline: Pipeline) -> None:
    settings = make_settings(demo_copy)
    url = settings.sqlalchemy_url
    with session_scope(url) as session:
        members = {m.slug: m.id for m in session.scalars(select(Member))}
        photo = session.scalars(
            select(Photo).where(Photo.member_id == members["saito_asuka"]).order_by(Photo.id)
        ).first()
        assert photo is not None
        wrong = photo.id
        # A mislabel curation never saw: the photo moved to another member behind its back.
        session.execute(update(Photo).where(Photo.id == wrong).values(member_id=members["hori_miona"]))
    built = reindex_group(settings, DEMO_GROUP, model_pack=pipeline.pack_name, embed=pipeline.embed_crops)
    [pair] = built.suspect_pairs
    assert (pair["photo_id"], pair["member"], pair["other_member"]) == (wrong, "hori_miona", "saito_asuka")
    assert pair["kind"] == "wrong_member" and pair["status"] == "flagged"
    assert pair["score"] > (pair["own"] or 0)
    assert built.n_faces == 24  # left out of the version
    with session_scope(url) as session:
        flagged = session.get_one(Photo, wrong)
        assert (flagged.status, flagged.reason) == ("flagged", "suspect:saito_asuka")
        assert wrong in [row.photo.id for row in repo.review_queue(session, group=DEMO_GROUP, limit=10)]
    # Once a reviewer fixes the label (here: the photo back where it belongs, approved), nothing is suspect.
    with session_scope(url) as session:
        session.execute(
            update(Photo).where(Photo.id == wrong).values(member_id=members["saito_asuka"], status="approved")
        )
    again = reindex_group(settings, DEMO_GROUP, model_pack=pipeline.pack_name, embed=pipeline.embed_crops)
    assert again.suspect_pairs == [] and again.n_faces == 25
