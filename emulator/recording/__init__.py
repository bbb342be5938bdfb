"""Record real Bedrock traffic into cassettes a person can read, and answer from them offline.

- `matching`: how a request is compared with a recorded one (volatile fields ignored) and how they differ;
- `cassette`: the file format (one YAML file per exchange) and the event-stream frames it re-encodes;
- `upstream`: forwarding a call to Bedrock (or any `--upstream`), re-signed with this process's credentials;
- `replay`: answering a call from a cassette, paced as recorded or faster;
- `mode`: the `--record` / `--replay` / `--record-missing` modes, their admin endpoint, and the dispatcher hook.

Cassettes are also rules (`testing.rules`): the rule book loads them, and one `Match` decides for both.
This package's `__init__` imports nothing, so `testing.rules` can import the pure modules without a cycle.
"""
