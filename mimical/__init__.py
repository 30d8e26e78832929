"""mimical: a chatbot that sounds like you, trained on your own chat history.

Run `mimical --help` for the command line; the README explains the whole system.
"""

__version__ = "0.1.0"
