"""What each family's native body becomes for the local model: chat turns (system / user / assistant) or raw text.

Every case is the same small conversation with a system prompt, written in the family's own markup or body:
system "Be brief.", user "Hi", assistant "Hello!", user "Tell me a joke".
"""

from __future__ import annotations

import base64

import pytest

from emulator import families
from emulator.chat.conversation import conversation
from emulator.protocol.errors import BedrockError

CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Tell me a joke"},
]
NO_SYSTEM = CHAT[1:]

LLAMA3 = (
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\nTell me a joke<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n"
)
LLAMA2 = "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Tell me a joke [/INST]"
MISTRAL = "<s>[INST] Hi [/INST] Hello!</s>[INST] Tell me a joke [/INST]"
DEEPSEEK = "<｜begin▁of▁sentence｜>Be brief.<｜User｜>Hi<｜Assistant｜>Hello!<｜end▁of▁sentence｜><｜User｜>Tell me a joke<｜Assistant｜>"
CLAUDE_TEXT = "Be brief.\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Tell me a joke\n\nAssistant:"
TITAN = "Be brief.\nUser: Hi\nBot: Hello!\nUser: Tell me a joke\nBot:"
OPENAI = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": [{"type": "text", "text": "Tell me a joke"}]},
]


def prompt(family: str, body: dict, model_id: str = "test.model-v1:0"):
    adapter = families.get(family)
    return adapter.variant(body, model_id).prompt(body)


@pytest.mark.parametrize(
    "family, body",
    [
        ("llama", {"prompt": LLAMA3}),
        ("llama", {"prompt": LLAMA2}),
        ("mistral", {"prompt": LLAMA2}),
        ("deepseek", {"prompt": DEEPSEEK}),
        ("titan-text", {"inputText": TITAN}),
        ("cohere-command", {"prompt": TITAN}),
        ("ai21-j2", {"prompt": CLAUDE_TEXT}),
        ("anthropic", {"system": "Be brief.", "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": [{"type": "text", "text": "Hello!"}]},
            {"role": "user", "content": [{"type": "text", "text": "Tell me a joke"}]}]}),
        ("anthropic", {"system": [{"type": "text", "text": "Be brief."}], "messages": [
            {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Tell me a joke"}]}),
        ("nova", {"system": [{"text": "Be brief."}], "messages": [
            {"role": "user", "content": [{"text": "Hi"}]}, {"role": "assistant", "content": [{"text": "Hello!"}]},
            {"role": "user", "content": [{"text": "Tell me a joke"}]}]}),
        ("cohere-command-r", {"preamble": "Be brief.", "message": "Tell me a joke", "chat_history": [
            {"role": "USER", "message": "Hi"}, {"role": "CHATBOT", "message": "Hello!"}]}),
        ("openai", {"messages": OPENAI}),
        ("ai21-jamba", {"messages": OPENAI}),
        ("mistral-chat", {"messages": OPENAI}),
    ],
)
def test_a_conversation_with_a_system_prompt_becomes_the_same_chat_turns(family, body):
    rendered = prompt(family, body)
    assert rendered.messages == CHAT
    assert rendered.text is None


def test_claude_text_completions_body_is_read_as_turns():
    rendered = prompt("anthropic", {"prompt": CLAUDE_TEXT}, "anthropic.claude-v2:1")
    assert rendered.messages == CHAT


def test_claude_3_refuses_the_text_completions_body():
    with pytest.raises(BedrockError) as caught:
        prompt("anthropic", {"prompt": CLAUDE_TEXT}, "us.anthropic.claude-3-haiku-20240307-v1:0")
    assert caught.value.message == '"claude-3-haiku-20240307" is not supported on this API. Please use the Messages API instead.'


@pytest.mark.parametrize(
    "text, message",
    [
        ("Tell me a joke", 'Invalid prompt: prompt must start with "\\n\\nHuman:" turn after an optional system prompt'),
        ("\n\nHuman: Tell me a joke", 'Invalid prompt: prompt must end with "\\n\\nAssistant:" turn'),
    ],
)
def test_claude_text_prompts_without_the_turn_markers_are_refused(text, message):
    with pytest.raises(BedrockError) as caught:
        prompt("anthropic", {"prompt": text}, "anthropic.claude-v2")
    assert caught.value.message == message


def test_claude_text_without_blank_lines_is_still_read_as_turns():
    rendered = prompt("anthropic", {"prompt": "Human: Hi Assistant:"}, "anthropic.claude-instant-v1")
    assert rendered.messages == [{"role": "user", "content": "Hi"}]


def test_mistral_markup_without_a_system_prompt():
    assert prompt("mistral", {"prompt": MISTRAL}).messages == NO_SYSTEM


@pytest.mark.parametrize("family", ["llama", "mistral", "deepseek"])
def test_a_completion_prompt_without_markup_is_continued_as_raw_text(family):
    rendered = prompt(family, {"prompt": "Once upon a time"})
    assert rendered.text == "Once upon a time"
    assert rendered.messages == []


@pytest.mark.parametrize("family, key", [("titan-text", "inputText"), ("cohere-command", "prompt"), ("ai21-j2", "prompt")])
def test_an_instruction_prompt_without_markup_is_one_user_turn(family, key):
    assert prompt(family, {key: "Tell me a joke"}).messages == [{"role": "user", "content": "Tell me a joke"}]


def test_an_assistant_prefill_in_markup_is_kept_for_the_model_to_continue():
    text = "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nSure, "
    assert prompt("llama", {"prompt": text}).messages == [
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Sure,"}]


def test_deepseeks_opening_think_tag_is_not_a_prefill():
    text = "<｜User｜>Hi<｜Assistant｜><think>\n"
    assert prompt("deepseek", {"prompt": text}).messages == [{"role": "user", "content": "Hi"}]


def test_llama3_tool_and_ipython_turns_are_read_as_user_turns():
    text = ("<|start_header_id|>user<|end_header_id|>\n\nWeather?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\ncall<|eot_id|>"
            "<|start_header_id|>ipython<|end_header_id|>\n\n18C<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert prompt("llama", {"prompt": text}).messages == [
        {"role": "user", "content": "Weather?"}, {"role": "assistant", "content": "call"},
        {"role": "user", "content": "18C"}]


def test_anthropic_consecutive_turns_of_one_role_are_merged():
    body = {"messages": [{"role": "user", "content": "Hi"}, {"role": "user", "content": [{"type": "text", "text": "there"}]}]}
    assert prompt("anthropic", body).messages == [{"role": "user", "content": "Hi\n\nthere"}]


@pytest.mark.parametrize(
    "messages, error",
    [
        ([], "messages: at least one message is required"),
        ([{"role": "user", "content": ""}], "messages: text content blocks must be non-empty"),
        ([{"role": "user", "content": []}],
         "messages: all messages must have non-empty content except for the optional final assistant message"),
        ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Sure "}],
         "messages: final assistant content cannot end with trailing whitespace"),
    ],
)
def test_anthropic_message_rules_refuse_with_claudes_wording(messages, error):
    with pytest.raises(BedrockError) as caught:
        prompt("anthropic", {"messages": messages})
    assert caught.value.message == error


def test_anthropic_tool_blocks_render_as_calls_and_results():
    body = {"messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"}]},
    ]}
    assert prompt("anthropic", body).messages == [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": '<tool_call>\n{"name":"weather","arguments":{"city":"Paris"}}\n</tool_call>'},
        {"role": "user", "content": "The tool returned: 18C"},
    ]


def test_openai_tool_calls_and_results_render_alike():
    body = {"messages": [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "18C"},
    ]}
    assert prompt("openai", body).messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": '<tool_call>\n{"name":"weather","arguments":{"city":"Paris"}}\n</tool_call>'},
        {"role": "user", "content": "The tool returned: 18C"},
    ]


def test_cohere_r_documents_and_tool_results_join_the_turn():
    body = {
        "message": "Summarise",
        "documents": [{"title": "t", "snippet": "s"}],
        "tool_results": [{"call": {"name": "lookup", "parameters": {"q": "x"}}, "outputs": [{"r": "v"}]}],
    }
    assert prompt("cohere-command-r", body).messages == [
        {"role": "assistant", "content": '<tool_call>\n{"name":"lookup","arguments":{"q":"x"}}\n</tool_call>'},
        {"role": "user", "content": "The tool returned: r: v"},
        {"role": "user", "content": "Summarise\n\n[documents]\ntitle: t\nsnippet: s"},
    ]


def test_converse_media_and_documents_become_textual_stand_ins():
    png = base64.b64encode(b"\x89PNG123").decode()
    note = base64.b64encode("Dear team,\nthanks.".encode()).decode()
    chat = conversation({"messages": [{"role": "user", "content": [
        {"text": "Look:"},
        {"image": {"format": "png", "source": {"bytes": png}}},
        {"video": {"format": "mp4", "source": {"s3Location": {"uri": "s3://b/v.mp4"}}}},
        {"document": {"name": "note", "format": "txt", "source": {"bytes": note}}},
        {"document": {"name": "report", "format": "pdf", "source": {"bytes": png}}},
        {"cachePoint": {"type": "default"}},
    ]}]})
    assert chat == [{"role": "user", "content": (
        "Look:\n[image: png, 7 bytes]\n[video: mp4, s3://b/v.mp4]\n"
        "[document note (txt)]\nDear team,\nthanks.\n[end of document note]\n[document report: pdf, 7 bytes]")}]


def test_converse_tool_error_results_say_the_tool_failed():
    chat = conversation({"messages": [
        {"role": "user", "content": [{"text": "Go"}]},
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "status": "error",
                                                     "content": [{"json": {"code": 500}}, {"text": "boom"}]}}]},
    ]})
    assert chat[1:] == [
        {"role": "assistant", "content": '<tool_call>\n{"name":"f","arguments":{}}\n</tool_call>'},
        {"role": "user", "content": 'The tool failed: {"code": 500}\nboom'},
    ]


@pytest.mark.parametrize(
    "messages, error",
    [
        ([{"role": "assistant", "content": [{"text": "Hi"}]}],
         "A conversation must start with a user message. Try again with a conversation that starts with a user message."),
        ([{"role": "user", "content": [{"text": "a"}]}, {"role": "user", "content": [{"text": "b"}]}],
         "A conversation must alternate between user and assistant roles. "
         "Make sure the conversation alternates between user and assistant roles and try again."),
        ([{"role": "user", "content": []}],
         "The content field in the Message object at messages.0 is empty. Add a ContentBlock object to the content field and try again."),
        ([{"role": "user", "content": [{"text": "ok"}, {"text": "  "}]}],
         "The text field in the ContentBlock object at messages.0.content.1 is blank. Add text to the text field, and try again."),
    ],
)
def test_converse_conversation_rules(messages, error):
    with pytest.raises(BedrockError) as caught:
        conversation({"messages": messages})
    assert caught.value.message == error


def test_consecutive_turns_of_one_role_in_markup_are_merged_but_system_turns_are_not():
    text = ("<|start_header_id|>system<|end_header_id|>\n\nA<|eot_id|><|start_header_id|>system<|end_header_id|>\n\nB<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nthere<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert prompt("llama", {"prompt": text}).messages == [
        {"role": "system", "content": "A"}, {"role": "system", "content": "B"}, {"role": "user", "content": "Hi\n\nthere"}]
