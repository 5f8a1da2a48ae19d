"""The comparison layer: the Gluon port (gluon_resnet_v2) against the symbolic original
(legacy_symbol), measured side by side.

It sits on top of both packages, which never import it: the core knows nothing of the
symbolic code, and the symbolic code (builders, Module trainer, mirroring) knows nothing
of how it is compared. `python -m legacy_symbol.compare SUBCOMMAND`:

  equivalence     equivalence.py (the check, its report), sides.py (the Gluon side and the
                  Module side of one case): outputs, every gradient, BN statistics
  train           train.py: one run trained by the Gluon engine and by a Module, compared
  speed           speed.py: training img/s and peak memory, Gluon and Module, 5 ways
  notes           notes_vs_paper.py: the notes' network against the paper's ResNet-110;
                  flops.py counts their multiply-adds

cli.py assembles the click group; child.py runs one function in a fresh Python process
(a measurement, a training, the MKLDNN-backend run) and reads its result back.
Submodules are imported on demand: `from legacy_symbol.compare import equivalence`.
"""
