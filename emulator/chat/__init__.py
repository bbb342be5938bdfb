"""Conversation rendering, beneath every API and family: Converse-shaped messages (`conversation`) and native
prompt markup (`prompts`) as the chat messages the local model's template renders."""
