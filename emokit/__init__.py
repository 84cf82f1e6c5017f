"""emokit: differentiable architecture search (DARTS) for speech emotion recognition."""
__version__ = "0.1.0"
