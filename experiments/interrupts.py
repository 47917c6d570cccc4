"""The Ctrl-C guard: ``sigint_deferred`` holds a SIGINT until a block that must not be cut ends."""

import signal
import threading
from contextlib import contextmanager


@contextmanager
def sigint_deferred():
    """Hold Ctrl-C until the block ends, then act on it: a lock taken in the block is released, a
    message is written whole. (A handler swap, not a signal mask: a masked SIGINT would still reach
    the process through its other threads, such as tqdm's monitor.) Other threads: nothing to do,
    Python raises KeyboardInterrupt only in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            signal.raise_signal(signal.SIGINT)  # as if it came now: KeyboardInterrupt, or what the handler does
