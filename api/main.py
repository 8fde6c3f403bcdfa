"""ASGI entry point for uvicorn: settings are read when the server starts."""

from api.app import create_app

app = create_app()
