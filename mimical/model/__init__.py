"""The persona model: training (`train`), SavedModel export for TF Serving (`export`),
evaluation against a character n-gram baseline (`evaluate`, `ngram`, `report`).

Run `mimical train corpus.jsonl -o MODEL_BASE` and `mimical evaluate MODEL_DIR corpus.jsonl`.
"""
