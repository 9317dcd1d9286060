"""The forward models, each implemented once, for both engines, and the torch-free pieces around them.

``--engine ort``'s MAP loop (``flowrt.solve.numpy_solver``) asks a forward model for ``nll_and_grad(x)``
and never imports torch; the torch engine reaches the same code through ``flowrt.operators.bridge``.
Modules:

  base           the interface: the ``Stage`` and ``Likelihood`` protocols
  normal         log Phi, log(1 - e^d) and the log-probability of a quantisation interval, with derivatives
  observation    the noise floor, the observed image, mask and scale checks (one place for both engines)
  kernels        blur kernels: parsing a --blur spec, checking, separating, listing taps
  resampling     1-D resampling weights: Pillow's bicubic downsampling, torch's bilinear/bicubic upsampling
  dct            the one 8x8 DCT matrix (JPEG's blocks, the grouped denoiser's patches)
  jpeg_layout    how an encoder lays an image into 8x8 DCT blocks (YCbCr, chroma pooling, MCU padding)
  blur, downsample, mask   the linear stages: ``apply`` and its adjoint ``vjp``
  noise, jpeg    the likelihoods: ``nll`` and ``nll_and_grad``
  chain          ``build_forward_model``: the ``ForwardModel``
  padding        padding to the prior's multiple and its adjoint; the start's Gaussian smoothing

Arrays are NCHW: images (B, 3, H, W) float32 (or float64) in [0, 1]; nll values (B,) float64 nats.
Nothing here imports torch (``tests/test_numeric.py`` checks it in a process without torch).
"""
