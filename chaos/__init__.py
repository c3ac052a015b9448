"""`make chaos`: break the worker in the ways production does and count what was lost or doubled."""
