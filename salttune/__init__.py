"""salttune: distributed hyperparameter search for seismic salt segmentation (TGS Salt)."""

__version__ = "0.1.0"
