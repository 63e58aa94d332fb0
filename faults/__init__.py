"""Hardening checks for issue 6: fault injection against train/, export/ and runtime/.
Each tool is a module with its own command line (`python -m faults.fuzz`, ...) and doc."""
