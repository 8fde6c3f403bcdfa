"""The bare FastAPI endpoint that ``bench/read.py`` compares ``/health`` and ``/catalog`` with.

A sync route like govshare's (run in the thread pool), served by the same uvicorn:

    .venv/bin/python -m uvicorn bare_app:app --app-dir bench
"""

from fastapi import FastAPI

app = FastAPI()


@app.get("/ping")
def ping() -> dict[str, str]:
    return {"status": "ok"}
