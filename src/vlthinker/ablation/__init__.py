"""`vlthinker ablate`: every arm of the paper's ablation on the same data, budget and seeds.

``plan`` reads the arms and lays out one run folder per arm × seed, ``runner`` trains them (one
after another, or several at once as subprocesses) and resumes an interrupted ablation, and
``analysis`` writes ``ablation.md``, ``ablation.png`` and ``ablation.json``.
"""
