"""The streamscore worker: a consumer-group member that scores events in micro-batches."""
