"""Tracepoints: kernel names and fields, free when off."""
