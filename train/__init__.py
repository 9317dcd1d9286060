"""flowrt.train: flow layers, the multiscale model, data, losses and the training loop."""
