"""A k-layer fully connected network with batch normalization, from scratch in NumPy.

Modules, one idea each:
    data        CIFAR-10: download, load, split, normalize
    layers      forward/backward pairs: linear, batch norm, ReLU, softmax cross-entropy
    network     the k-layer network: initialization, cost, gradients, prediction
    training    mini-batch gradient descent with cyclical learning rates, snapshots
    gradcheck   numerical gradients and the relative-error table
    checkpoint  saving and loading trained networks
    experiments one training run, summarized as plain data
    search      staged random search of lambda on a process pool or a Dask cluster
    cache, checks, plots, widgets, tables, summary, report
                what the notebooks call, and the main job that runs them
    progress    the progress bar
    cli         `python -m helpers ...`
"""
