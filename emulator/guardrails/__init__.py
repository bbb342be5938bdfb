"""Guardrails: configured policies applied to text (ApplyGuardrail, and guardrailConfig on model calls)."""
