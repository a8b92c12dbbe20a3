"""Analysis of the scores table: scaling fits, train-equivalent FLOPs, crossovers, PCA."""
