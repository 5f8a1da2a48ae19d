"""The original MXNet symbolic (`mx.sym` + `mx.mod.Module`) code the project grew from.

Kept for comparison with the Gluon port and for what only the graph executor does
(memory mirroring, MXNET_BACKWARD_DO_MIRROR). See README.md:
  notes        the notes' network, faithful, its quirks against the paper marked
  paper        every registry network as a symbol named like the Gluon parameters
  weights      Gluon <-> symbol arg/aux dicts, by name
  equivalence  Gluon vs Module: outputs, every gradient, BN statistics (runs: the two sides)
  fit, train   Module training in the notes' style (python -m legacy_symbol.train)
  mirror       memory mirroring plans for the graph executor (--mirror)
Submodules are imported on demand: `from legacy_symbol import paper`.
"""
