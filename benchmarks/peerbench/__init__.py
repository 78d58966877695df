"""The peer benchmark's parts, one job per module (after ann-benchmarks' layout).

- `datasets`: the data sets (generated and bundled), exact ground truth, recall.
- `engines`: one small class per engine on one base (`Engine`).
- `child`: the process that builds one engine and answers timing requests.
- `session`: the parent's side: child processes, interleaved timing, fresh-process start.
- `table`: the Markdown table and the ratios against the targets.

`benchmarks/peers.py` is the command that puts them together.
"""
