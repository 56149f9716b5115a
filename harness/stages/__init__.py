"""The stages of a run, one module each: plan -> generate -> preference -> benchmark -> judge -> parity
-> metrics -> score.

``plan`` checks everything and returns a ``Plan``; every other stage module has an ``execute``
that takes what it needs (the plan, the run directory, the progress display) and writes its
records through ``RunDir``. ``harness.runner`` only sequences them.
"""
