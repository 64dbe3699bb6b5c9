"""Model packs and provider choice, on the real buffalo_s files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lookalike.errors import ModelUnavailable
from lookalike.models.pack import sha256_file
from lookalike.models.packs import BUFFALO_S_SHA256, resolve_pack, verify_pack
from lookalike.models.sessions import choose_providers, create_session


def test_buffalo_s_comes_from_the_wheel_and_verifies() -> None:
    pack = resolve_pack("buffalo_s", model_root=Path("/nonexistent"))
    assert pack.detector.name == "scrfd_500m_bnkps.onnx"
    assert pack.embedder.name == "w600k_mbf.onnx"
    assert verify_pack(pack) == BUFFALO_S_SHA256


def test_a_tampered_pinned_file_is_refused(tmp_path: Path) -> None:
    pack = resolve_pack("buffalo_s", model_root=tmp_path)
    copy = tmp_path / pack.embedder.name
    shutil.copyfile(pack.embedder, copy)
    with copy.open("r+b") as fh:
        fh.seek(4096)
        fh.write(b"\x00\x01\x02\x03")
    tampered = type(pack)(**{**pack.__dict__, "embedder": copy})
    with pytest.raises(ModelUnavailable, match="sha256"):
        verify_pack(tampered)


def test_a_custom_directory_is_classified_pinned_on_first_load_and_checked_after(tmp_path: Path) -> None:
    source = resolve_pack("buffalo_s", model_root=tmp_path)
    custom = tmp_path / "mypack"
    custom.mkdir()
    # Names that sort the embedder first: classification must go by the graphs, not the names.
    shutil.copyfile(source.embedder, custom / "a_recognition.onnx")
    shutil.copyfile(source.detector, custom / "b_detection.onnx")
    pack = resolve_pack(str(custom), model_root=tmp_path)
    assert pack.detector.name == "b_detection.onnx"
    assert pack.embedder.name == "a_recognition.onnx"
    first = verify_pack(pack)
    assert first["a_recognition.onnx"] == sha256_file(source.embedder)
    assert (custom / "lookalike-sha256.json").is_file()

    with (custom / "b_detection.onnx").open("r+b") as fh:
        fh.seek(2048)
        fh.write(b"\xff\xfe")
    # Either the graph no longer parses or its digest no longer matches: both refuse the pack.
    with pytest.raises(ModelUnavailable, match=r"sha256|not a readable ONNX model"):
        verify_pack(resolve_pack(str(custom), model_root=tmp_path))


def test_a_directory_without_both_models_is_refused(tmp_path: Path) -> None:
    source = resolve_pack("buffalo_s", model_root=tmp_path)
    only = tmp_path / "half"
    only.mkdir()
    shutil.copyfile(source.detector, only / "det.onnx")
    with pytest.raises(ModelUnavailable, match="detection and a recognition"):
        resolve_pack(str(only), model_root=tmp_path)


def test_unknown_pack_name_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="unknown model pack"):
        resolve_pack("buffalo_xxl", model_root=tmp_path)


def test_buffalo_l_offline_is_a_clear_error(tmp_path: Path) -> None:
    # This machine reaches no model store: the real download code runs and must fail with our error.
    with pytest.raises(ModelUnavailable, match="buffalo_l"):
        verify_pack(resolve_pack("buffalo_l", model_root=tmp_path))


def test_buffalo_l_found_locally_is_not_downloaded(tmp_path: Path) -> None:
    source = resolve_pack("buffalo_s", model_root=tmp_path)
    pack_dir = tmp_path / "models" / "buffalo_l"
    pack_dir.mkdir(parents=True)
    # Stand-in files with buffalo_l's names: resolution must only look at the disk.
    shutil.copyfile(source.detector, pack_dir / "det_10g.onnx")
    shutil.copyfile(source.embedder, pack_dir / "w600k_r50.onnx")
    pack = resolve_pack("buffalo_l", model_root=tmp_path)
    assert pack.detector == pack_dir / "det_10g.onnx"
    assert set(verify_pack(pack)) == {"det_10g.onnx", "w600k_r50.onnx"}


@pytest.mark.parametrize(
    ("requested", "available", "expected"),
    [
        ((), ["CUDAExecutionProvider", "CPUExecutionProvider"], ["CUDAExecutionProvider", "CPUExecutionProvider"]),
        ((), ["CPUExecutionProvider"], ["CPUExecutionProvider"]),
        (
            (),
            ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
            ["CUDAExecutionProvider", "CPUExecutionProvider"],
        ),
        (("CPUExecutionProvider",), ["CUDAExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"]),
    ],
)
def test_provider_choice(requested: tuple[str, ...], available: list[str], expected: list[str]) -> None:
    assert choose_providers(requested, available) == expected


def test_requesting_a_missing_provider_fails_loudly() -> None:
    with pytest.raises(ValueError, match="CUDAExecutionProvider"):
        choose_providers(["CUDAExecutionProvider"], ["CPUExecutionProvider"])


def test_cuda_gets_its_options_and_cpu_none() -> None:
    from lookalike.models.sessions import CUDA_OPTIONS, provider_args

    cuda, cpu = provider_args(["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert cpu == "CPUExecutionProvider"
    assert cuda == ("CUDAExecutionProvider", CUDA_OPTIONS)
    assert CUDA_OPTIONS["cudnn_conv_algo_search"] == "HEURISTIC"
    assert CUDA_OPTIONS["arena_extend_strategy"] == "kSameAsRequested"


def test_the_runtime_here_offers_cpu_and_sessions_use_the_chosen_provider() -> None:
    providers = choose_providers()
    assert providers[-1] == "CPUExecutionProvider"
    pack = resolve_pack("buffalo_s", model_root=Path("/nonexistent"))
    session = create_session(pack.embedder, providers=providers, threads=1)
    assert session.get_providers()[0] == providers[0]
