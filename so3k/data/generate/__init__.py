"""Reference data generators: MD sampling, cumulene sets and scans, water boxes, relabelling.

Each generator writes frames as they are made through :class:`~so3k.data.generate.sink.FrameSink`,
so a killed run loses nothing and ``resume=True`` continues it exactly.
"""
