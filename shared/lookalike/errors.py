"""Errors a client or operator can cause, each with a stable code and an HTTP status.

The gateway turns every `LookalikeError` into `{"error": {"code", "message"}}`; codes never change meaning.
"""

from __future__ import annotations

from typing import Any


class LookalikeError(Exception):
    code = "error"
    status = 400

    def __init__(
        self, message: str, *, code: str | None = None, status: int | None = None, photo: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        # Several photos of one person: which one (1-based, in the order sent) the error is about.
        self.photo = photo
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def about_photo(self, number: int, count: int) -> None:
        """Name the photo (1-based, of `count` sent together) this error is about, in the message and in `photo`."""
        self.message, self.photo = f"photo {number} of {count}: {self.message}", number

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.photo is not None:
            out["photo"] = self.photo
        return out


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


class DifferentPeople(LookalikeError):
    """Several photos sent as one person's, but one of them shows someone else."""

    code = "different_people"
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
