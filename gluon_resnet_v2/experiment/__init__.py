"""The paper's tables as experiments: definitions as data, run through the one train
command, summarised against the paper's numbers.

    python -m gluon_resnet_v2.experiment list [NAME]
    python -m gluon_resnet_v2.experiment run table1 --scale quick --seeds 3 --dtype bfloat16
    python -m gluon_resnet_v2.experiment status table1 --scale quick
    python -m gluon_resnet_v2.experiment summarize table1 --scale quick

* definitions.py  the tables (table1.yaml .. table5.yaml here: rows of train options and
                  the paper's numbers) and the scales (scales.yaml: paper, quick, short).
* runner.py       each (row, seed) an ordinary run dir <root>/<table>-<scale>/<row>/seed<k>
                  trained by `python -m gluon_resnet_v2.train` in a child process; rerun,
                  it skips finished runs and resumes interrupted ones.
* summary.py      median (mean ± std) per row against the paper, Markdown; the overlay.
* __main__.py     the command line.

Importing this package loads no MXNet (the runs do, in their own processes).
"""
