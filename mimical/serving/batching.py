"""Server-side batching: concurrent Predict calls of one signature run as one batch.

A persona model samples its reply one character at a time, so a call costs about
the same for one row as for thirty: batching is what lets one CPU answer many
chats at once (TF Serving's `--enable_batching` does the same). There is no fixed
wait: a batch is whatever queued up while the previous one ran, so an idle
server answers a lone request at once and a busy one batches more.

Usage (one per loaded signature):

    batcher = Batcher(saved_model.signatures["reply"])
    outputs = batcher({"context": np.array([b"hi"]), ...})   # numpy in, numpy out
    batcher.close()
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

import numpy as np

MAX_BATCH_ROWS = 64


def _batch_size(inputs: dict[str, np.ndarray]) -> int | None:
    """The shared first dimension of all inputs, or None if they cannot be batched."""
    sizes = {array.shape[0] if array.ndim else None for array in inputs.values()}
    return sizes.pop() if len(sizes) == 1 and None not in sizes else None


class Batcher:
    def __init__(self, function, max_rows: int = MAX_BATCH_ROWS):
        self.function = function
        self.max_rows = max_rows
        self._specs = function.structured_input_signature[1]
        self._queue: queue.Queue = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="batcher", daemon=True)
        self._thread.start()

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        future: Future | None = None
        with self._lock:
            if not self._closed and _batch_size(inputs):
                future = Future()
                self._queue.put((inputs, future))
        return future.result() if future is not None else self.run(inputs)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Call the signature directly on numpy inputs."""
        import tensorflow as tf

        tensors = {
            key: tf.constant(inputs[key], dtype=spec.dtype) for key, spec in self._specs.items()
        }
        return {key: value.numpy() for key, value in self.function(**tensors).items()}

    def _run(self) -> None:
        while (first := self._queue.get()) is not None:
            batch, rows = [first], _batch_size(first[0])
            while rows < self.max_rows:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(item)
                rows += _batch_size(item[0])
            self._run_batch(batch)

    def _run_batch(self, batch: list[tuple[dict, Future]]) -> None:
        if len(batch) > 1:
            try:
                merged = {
                    key: np.concatenate([inputs[key] for inputs, _ in batch]) for key in batch[0][0]
                }
                outputs = self.run(merged)
                ends = np.cumsum([_batch_size(inputs) for inputs, _ in batch])[:-1]
                parts = {key: np.split(value, ends) for key, value in outputs.items()}
                for i, (_, future) in enumerate(batch):
                    future.set_result({key: part[i] for key, part in parts.items()})
                return
            except Exception:  # one bad request must not fail its neighbours
                pass
        for inputs, future in batch:
            try:
                future.set_result(self.run(inputs))
            except Exception as error:  # handed to the caller's thread
                future.set_exception(error)

    def close(self) -> None:
        """Finish queued calls; later calls run unbatched (a model being replaced)."""
        with self._lock:
            self._closed = True
        self._queue.put(None)
        self._thread.join()
