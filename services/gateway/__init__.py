"""The HTTP gateway: FastAPI app factory, routes and the static page."""
