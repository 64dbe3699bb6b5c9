"""Deployment tooling that is not part of the images: the compose check and its stand-in base images."""
