"""The command line: flags, entry points and the `impala-tf` program."""
