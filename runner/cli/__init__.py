"""The `ukl` command line: argument parsing, one function per command, human tables."""
