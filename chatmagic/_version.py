"""The package version, in its own module so that providers (the User-Agent) need not import
the package root, whose lazy names reach up to the magics and the panel."""

__version__ = "0.1.0"
