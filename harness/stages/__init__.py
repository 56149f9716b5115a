"""The stages of a run, one module each: plan -> generate -> benchmark -> judge -> score.

Each stage takes what it needs (the plan, the model pool, the run directory) and writes its
records through ``RunDir``; ``harness.runner`` only sequences them.
"""
