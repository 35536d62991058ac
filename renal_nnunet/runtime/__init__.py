"""Where the networks' forward passes run: which runtime (PyTorch on a torch device, or OpenVINO
on the CPU), the OpenVINO conversion and its cache, and the clock of time spent in forward passes.

Below both ``inference`` (the U-Net stages) and ``classification`` (the lesion classifier): each
builds its fold ensembles on one :class:`~renal_nnunet.runtime.backends.Runtime`, resolved once per
run by :meth:`~renal_nnunet.runtime.backends.Runtime.resolve`. This package imports neither.
"""
