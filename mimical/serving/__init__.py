"""Model serving over TF Serving's gRPC API.

`server` is our own PredictionService/ModelService over SavedModels in TF Serving's
layout (`mimical serve-models`); `client` talks to it, or to real TF Serving in
Kubernetes, unchanged. `connect` picks one of the two for a `Settings`.
"""
