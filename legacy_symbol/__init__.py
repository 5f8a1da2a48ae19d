"""The original MXNet symbolic (`mx.sym` + `mx.mod.Module`) code the project grew from.

Kept for comparison with the Gluon port and for what only the graph executor does
(memory mirroring, MXNET_BACKWARD_DO_MIRROR).
"""
