"""mimical: a chatbot that sounds like you, trained on your own chat history.

Run `mimical --help` for the command line; the README explains the whole system.
"""

import os

__version__ = "0.1.0"

# A process started by a quiet `mimical` command (a spawned build worker) stays quiet.
if os.environ.get("MIMICAL_QUIET_TENSORFLOW"):
    from mimical.quiet import quiet_tensorflow

    quiet_tensorflow()
