"""diffii-datasets: Diff-II diffusion augmentation for data-scarce image classification."""

__version__ = "0.1.0"
