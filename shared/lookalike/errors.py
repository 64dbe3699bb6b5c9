"""Errors a client or operator can cause, each with a stable code and an HTTP status.

The gateway turns every `LookalikeError` into `{"error": {"code", "message"}}`; codes never change meaning.
"""

from __future__ import annotations


class LookalikeError(Exception):
    code = "error"
    status = 400

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class ImageError(LookalikeError):
    """The upload is not a usable picture."""

    code = "invalid_image"
    status = 422


class NotAnImage(ImageError):
    code = "not_an_image"
    status = 415


class UnsupportedImageType(ImageError):
    code = "unsupported_image_type"
    status = 415


class CorruptImage(ImageError):
    code = "corrupt_image"
    status = 422


class ImageTooLarge(ImageError):
    """More pixels than the configured cap (a decompression bomb looks like this)."""

    code = "image_too_large"
    status = 413


class UploadTooLarge(LookalikeError):
    code = "upload_too_large"
    status = 413


class NoFace(LookalikeError):
    code = "no_face"
    status = 422


class InvalidParameter(LookalikeError):
    code = "invalid_parameter"
    status = 422


class NotFound(LookalikeError):
    code = "not_found"
    status = 404


class NoIndex(LookalikeError):
    """No active index version for the requested group: nothing to compare against yet."""

    code = "no_index"
    status = 409


class ModelUnavailable(LookalikeError):
    """A model pack cannot be loaded (missing, offline, or its files fail their checksum)."""

    code = "model_unavailable"
    status = 503
