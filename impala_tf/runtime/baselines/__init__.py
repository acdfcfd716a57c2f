"""The paper's Table 1 baselines as training modes of the same trainer.

`mode` (the four architectures, `--architecture`), `a3c` (workers that
send gradients), `waits` (where each architecture's time goes, in every
progress record). docs/TABLE1.md compares them; `benchmarks.table1`
measures them.
"""
