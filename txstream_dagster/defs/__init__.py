"""One package per stage of the data flow, each with its own `definitions.py`."""
