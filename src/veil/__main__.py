"""Allows `python -m veil`."""

from .cli import main

main()
