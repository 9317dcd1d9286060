"""flowrt.cli: the click commands (thin: parse, call the library, report)."""
