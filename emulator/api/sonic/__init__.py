"""Amazon Nova Sonic's event protocol (InvokeModelWithBidirectionalStream), independent of the transport.

`events` checks each input event the way the service does and builds the output events; `session` is the state
machine of one session (turns answered by the local model through `Service.generate`); `audio` holds the
PLACEHOLDER speech handling (no speech model ships with the emulator: see the README).
"""
