"""A k-layer fully connected network with batch normalization, from scratch in NumPy.

    core/       the network's math: data, layers, network, training, the fast
                path (fast.py) beside the textbook one, gradient checks
    report/     what the notebooks show: settings, cache, plots, widgets, tables,
                the report's checks and claims, and the main job (python -m helpers.report)
    experiments one training run, summarized as plain data
    search      staged random search of lambda on a process pool or a Dask cluster
    seeds       one configuration over several seeds, in parallel, and its spread
    checkpoint  saving and loading trained networks
    files       the atomic file write
    errors      every error the package raises on purpose
    progress    the progress bar
    cli         every command of `python -m helpers`
"""
