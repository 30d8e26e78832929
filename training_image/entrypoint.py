"""Training image entry: one Chatbot generation's Job (see mimical.kube.training_job).

python /app/entrypoint.py      # env (MIMICAL_CHATBOT, MIMICAL_SOURCE, ...) set by the operator
"""

import sys

from mimical.kube.training_job import main

if __name__ == "__main__":
    sys.exit(main())
