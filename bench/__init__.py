"""`make bench`: the worker measured against its ceilings and its peers on the embedded broker."""
