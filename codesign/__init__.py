"""codesign: hardware-aware co-design of networks, quantization and accelerators."""

__version__ = "0.1.0"
