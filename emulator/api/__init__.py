"""One module per operation family: parse, validate, call the service, shape the reply."""
