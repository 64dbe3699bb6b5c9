"""Model packs (detector + embedder ONNX files) and the ONNX Runtime session factory."""

from lookalike.models.pack import ModelPack
from lookalike.models.packs import resolve_pack, verify_pack
from lookalike.models.sessions import choose_providers, session_options

__all__ = ["ModelPack", "choose_providers", "resolve_pack", "session_options", "verify_pack"]
