"""Syllabary's segmentation engine: video in, behavioural syllables out.

Pure PyTorch + OpenCV/PyAV + NumPy. This package never imports ``app`` or ``worker``, so a
scientist can ``import model`` in a notebook and the engine can be tested and benchmarked alone.
"""

__version__ = "0.1.0"
