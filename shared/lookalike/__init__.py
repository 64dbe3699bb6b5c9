"""lookalike: which gallery members does each face resemble, or nobody."""

__version__ = "0.1.0"
