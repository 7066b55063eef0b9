"""Leadership Coach: tells whether a workplace situation calls for management, leadership or both."""

__version__ = "0.1.0"
