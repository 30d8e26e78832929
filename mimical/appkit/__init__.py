"""What every component of the app factory (`mimical.app.create_app`) shares, below
`mimical.web` and `mimical.messenger` alike: its settings and error shape (`component`),
per-app resources (`resources`), chat resources (`dialog_app`), readiness checks
(`health`) and metrics (`metrics`). Nothing here imports `web` or `messenger`.
"""
