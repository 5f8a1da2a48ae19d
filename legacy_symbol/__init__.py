"""The original MXNet symbolic (`mx.sym` + `mx.mod.Module`) code the project grew from.

Kept for comparison with the Gluon port and for what only the graph executor does
(memory mirroring, MXNET_BACKWARD_DO_MIRROR). See README.md:
  notes        the notes' network, faithful, its quirks against the paper marked
  paper        every registry network as a symbol named like the Gluon parameters
  weights      Gluon <-> symbol arg/aux dicts, by name
  fit, train   Module training in the notes' style (python -m legacy_symbol.train)
  mirror       memory mirroring plans for the graph executor (--mirror)
  compare      the layer above both packages (python -m legacy_symbol.compare):
               equivalence (with sides: the Gluon and Module runs), train, speed,
               notes_vs_paper (with flops), child (one function in a child process)
Submodules are imported on demand: `from legacy_symbol import paper`.
"""
