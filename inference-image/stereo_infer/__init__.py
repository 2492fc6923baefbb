"""Media pipeline of the stereo inference image: probe, split, convert, assemble."""

__version__ = "0.1.0"
