"""Estimators over a prior and a forward model: the MAP solver."""
