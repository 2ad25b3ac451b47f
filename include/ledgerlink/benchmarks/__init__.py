"""Benchmarks that print figures. They run the pipeline's own code on generated data; speed goals
are checked by reading their output, never by timed assertions."""
