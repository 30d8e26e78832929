"""The web's HTTP components: `api` (the backend), `suggestions`, `away` and `chat` (the
web chat page); each exposes a `blueprint` and an `init_app(app)`. The app factory that
composes them with the Messenger webhook is `mimical.app.create_app`, above both; what
every component reads from the app (settings, the error shape, resources, metrics,
readiness) is `mimical.appkit`, below both: nothing here imports `mimical.messenger`.
"""
