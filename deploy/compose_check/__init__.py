"""`make compose-check`: the Compose stack built and run under podman (python -m deploy.compose_check)."""
