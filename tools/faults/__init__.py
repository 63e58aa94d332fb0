"""Hardening checks: fault injection against train/, export/ and runtime/.
Each tool is a module with its own command line (`python -m tools.faults.fuzz`, ...) and doc."""
