"""``python -m pooltender.cli``."""

from . import main

main()
