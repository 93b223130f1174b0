"""The `handgesture` command: the one command line, above flows/, tasks/ and the library.

`main` parses every subcommand; `python flows/train.py ...` and `python flows/evaluate.py ...` are
`handgesture train ...` and `handgesture evaluate --flow ...` through the same parser. Nothing below imports
this package, and the commands that run a flow import flows/ (and Prefect) only when they run.
"""
