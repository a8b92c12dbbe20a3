"""Analysis of the scores table: scaling fits, train-equivalent FLOPs, crossovers, PCA.

One module a job, all pure functions from DataFrames to DataFrames (nothing reads or writes
files); the columns and status strings of what they return are :mod:`thinkcost.tables`'.

- ``linear``: the one linear fit (OLS with its covariance) and its delta-method inversion;
- ``family``: each family's baseline score as a line in log10 training FLOPs;
- ``train_equivalent``: those lines read backwards at every optimized score, and the
  train_equivalent table;
- ``crossover``: the request count at which inference spending stops paying, in FLOPs or
  device-seconds;
- ``isoflop``: score against log10 training FLOPs and generated tokens;
- ``frontier``: the Pareto frontier of cost against score;
- ``pca``: observational scaling, a PCA of the scores with its family and gain fits;
- ``frames``: the DataFrame plumbing the fits share.

A new fit is a module here that takes the scores table and returns a table whose columns are
stated in :mod:`thinkcost.tables`.
"""
