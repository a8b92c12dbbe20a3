"""thinkcost: when is thinking at inference time worth more than training?"""

__version__ = "0.1.0"
