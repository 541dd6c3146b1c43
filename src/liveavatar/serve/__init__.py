"""`liveavatar serve`: one resident engine behind an HTTP API (shaped like OpenAI Videos) and a web UI.

app.py: the routes; jobs.py: the queue and the workers that call `pipeline.run`; store.py: SQLite
persistence; uploads.py: receiving inputs within limits; stream.py: the video while it grows;
ui.py + ui.html: the web page. Nothing here makes video itself: the pipeline does.
"""
