"""Wire concerns: routing by raw path, event-stream framing, errors, request ids, validation against the service model."""
