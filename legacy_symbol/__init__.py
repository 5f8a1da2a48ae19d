"""The original MXNet symbolic (`mx.sym` + `mx.mod.Module`) code the project grew from.

Kept for comparison with the Gluon port, and as the notes' Module trainer (its --mirror uses
gluon_resnet_v2.mirror's plans, as the Gluon trainer's --memory-saving does). See README.md:
  notes        the notes' network, faithful, its quirks against the paper marked
  paper        every registry network as a symbol named like the Gluon parameters
  weights      Gluon <-> symbol arg/aux dicts, by name
  fit, train   Module training in the notes' style (python -m legacy_symbol.train)
  compare      the layer above both packages (python -m legacy_symbol.compare):
               equivalence (with sides: the Gluon and Module runs), train, speed,
               notes_vs_paper (with flops), child (one function in a child process)
Submodules are imported on demand: `from legacy_symbol import paper`.
"""
# the core first: with the GPU environment it preloads the CUDA libraries that MXNet (which
# every submodule here imports) needs (gluon_resnet_v2/cuda.py); otherwise it loads nothing
import gluon_resnet_v2  # noqa: F401
