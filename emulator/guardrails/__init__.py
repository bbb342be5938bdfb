"""Guardrails: policies from the guardrails file or created through the control plane (`store.py`), evaluated
over text (`policies.py`; contextual grounding: `grounding.py`) for ApplyGuardrail, and wrapped around a model
call's generation (`request_path.py`) when the call names a guardrail: Converse's `guardrailConfig`, InvokeModel's
`X-Amzn-Bedrock-Guardrail*` headers (api/guarded.py reads which)."""
