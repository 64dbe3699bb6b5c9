"""A photo alone in an embedded gateway gets wide ONNX Runtime sessions; under load every worker keeps its one thread.

Real models: which sessions ran is read from the sessions' own options, and the answers of both are compared."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from lookalike.imaging import decode_image
from lookalike.jobs.functions import JobContext
from lookalike.jobs.runner import InlineRunner
from lookalike.pipeline.pipeline import Pipeline
from lookalike.runtime import build_context
from tests.conftest import DATA, make_settings

PHOTO = next(iter(sorted((DATA / "probes").glob("*/*.jpg"))))


def threads_of(pipeline: Pipeline, alone: bool) -> int:
    """intra_op_num_threads of the detector session an analysis would use now."""
    pipeline.alone = lambda: alone
    with pipeline._sessions() as (detector, _):
        return int(detector._scrfd.session.get_session_options().intra_op_num_threads)


@pytest.fixture(scope="module")
def lone(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    pipe = Pipeline(make_settings(tmp_path_factory.mktemp("lone"), lone_threads=2))
    pipe.alone = lambda: True
    pipe.load()
    return pipe


def test_alone_uses_the_wide_sessions_and_otherwise_the_narrow(lone: Pipeline) -> None:
    assert threads_of(lone, alone=True) == 2
    assert threads_of(lone, alone=False) == 1


def test_a_second_analysis_running_keeps_the_narrow_sessions(lone: Pipeline) -> None:
    """The runner may say alone while another analysis of the process (an explain, a re-read) still runs."""
    lone.alone = lambda: True
    entered, release = threading.Event(), threading.Event()

    def first() -> None:
        with lone._sessions():
            entered.set()
            release.wait(10)

    holder = threading.Thread(target=first)
    holder.start()
    try:
        assert entered.wait(10)
        assert threads_of(lone, alone=True) == 1
    finally:
        release.set()
        holder.join()
    assert threads_of(lone, alone=True) == 2


def test_wide_and_narrow_sessions_give_the_same_faces(lone: Pipeline) -> None:
    image = decode_image(PHOTO.read_bytes(), max_pixels=40_000_000, max_side=640)
    lone.alone = lambda: True
    wide = lone.analyze(image)
    lone.alone = lambda: False
    narrow = lone.analyze(image)
    assert len(wide) == len(narrow) >= 1
    for a, b in zip(wide, narrow, strict=True):
        np.testing.assert_allclose(a.detection.box, b.detection.box, atol=1e-3)
        assert float(a.embedding @ b.embedding) > 0.99999


def test_no_wide_sessions_when_told_never_or_without_a_runner(tmp_path: Path) -> None:
    never = Pipeline(make_settings(tmp_path, lone_threads=1))
    never.alone = lambda: True
    never.load()
    assert never._wide is None and threads_of(never, alone=True) == 1
    unset = Pipeline(make_settings(tmp_path))
    unset.load()
    assert unset._wide is None and unset.lone_threads() == 1


@pytest.mark.parametrize(("processes", "expected"), [(1, True), (2, False)])
def test_the_embedded_runner_says_alone_only_as_the_only_process(
    tmp_path: Path, processes: int, expected: bool
) -> None:
    ctx: JobContext = build_context(make_settings(tmp_path, processes=processes, lone_threads=2))
    runner = InlineRunner(ctx)
    try:
        assert (ctx.pipeline.alone is not None) is expected
        if expected:
            assert ctx.pipeline.alone is not None
            assert ctx.pipeline.alone()
            runner._backlog["diagnose"] = 2
            assert not ctx.pipeline.alone()
            runner._backlog["diagnose"], runner._backlog["ingest"] = 1, 1
            assert not ctx.pipeline.alone()
    finally:
        for pool in runner._pools.values():
            pool.shutdown()
