"""The built-in tasks of ``focalkit compare``: each turns data and model options into a
``fit(loss_fn, *, seed, lr)`` for :func:`focalkit.compare.run`.

- :mod:`.tabular`: an MLP or a linear model on a table (stratified 60/20/20 split per seed);
- :mod:`.gbdt`: XGBoost or LightGBM with focalkit's objectives on the same splits;
- :mod:`.scenes`: per-pixel segmentation with a small fully convolutional network.
"""
