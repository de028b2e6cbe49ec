"""The controller, one hardware unit per module: ``fetch``, ``decode``, ``tokens`` (a dependency
token channel), ``dispatch`` (the queues), ``retire`` (the compute queue's in-order retirement),
``errors`` (the error arbiter), ``watchdog``, ``run`` (start, halt, end) and ``controller``, which
joins them. ``signatures`` holds the bundles between them."""

from hw.control.controller import Controller

__all__ = ["Controller"]
