import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from serve_helpers import ServerThread  # noqa: E402

from liveavatar.serve.settings import Limits, ServeSettings  # noqa: E402


@pytest.fixture
def start_server(tmp_path):
    """``start_server(engine=None, **settings)`` -> a running ServerThread; all stopped at the end."""
    started = []

    def start(engine=None, data_dir=None, **fields):
        limits = fields.pop("limits", Limits())
        settings = ServeSettings(data_dir=data_dir or tmp_path / "data", engine="preview", limits=limits, **fields)
        server = ServerThread(settings, engine).start()
        started.append(server)
        return server

    yield start
    for server in started:
        for engine_gate in [getattr(server.queue.engine, "gate", None)]:
            if engine_gate is not None:
                engine_gate.set()
        server.stop()
