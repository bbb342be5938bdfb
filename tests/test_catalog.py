"""Model ids in every form Bedrock accepts resolve to the same catalog rule; unknown ids get Bedrock's error.

Which rule answered is visible over HTTP without generating: each rule has its own output limit, and asking
for one token more than it returns Bedrock's "exceeds the model limit of N". boto3 percent-encodes the `:` and
`/` of ARNs in the path, so these calls also prove the raw-path routing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from conftest import HAIKU, default_engine, user

from emulator.app import Settings, build_app
from emulator.catalog import Catalog
from emulator.protocol.errors import BedrockError

ACCOUNT = "123456789012"
HAIKU_FORMS = [
    HAIKU,
    f"us.{HAIKU}",
    f"eu.{HAIKU}",
    f"apac.{HAIKU}",
    f"global.{HAIKU}",
    f"us-gov.{HAIKU}",
    f"arn:aws:bedrock:us-east-1::foundation-model/{HAIKU}",
    f"arn:aws-us-gov:bedrock:us-gov-west-1::foundation-model/{HAIKU}",
    f"arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/us.{HAIKU}",
    f"arn:aws:bedrock:eu-west-1:{ACCOUNT}:inference-profile/global.{HAIKU}",
]
# Resource ARNs whose base model only AWS knows: the catalog's `provisioned-model/*`-style rules answer them,
# each in its family's native vocabulary (Anthropic says `max_tokens`, Llama says `length`).
RESOURCE_ARNS = {
    f"arn:aws:bedrock:us-east-1:{ACCOUNT}:provisioned-model/a1b2c3d4e5f6": "max_tokens",
    f"arn:aws:bedrock:us-east-1:{ACCOUNT}:imported-model/a1b2c3d4e5f6": "length",
    f"arn:aws:bedrock:us-east-1:{ACCOUNT}:application-inference-profile/a1b2c3d4e5f6": "max_tokens",
    f"arn:aws:bedrock:us-east-1:{ACCOUNT}:custom-model-deployment/a1b2c3d4e5f6": "max_tokens",
}


def limit_error(client, model_id: str, max_tokens: int) -> str:
    with pytest.raises(ClientError) as caught:
        client.converse(modelId=model_id, messages=[user("Hi")], inferenceConfig={"maxTokens": max_tokens})
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    return caught.value.response["Error"]["Message"]


def over_limit(limit: int) -> str:
    return (
        f"The maximum tokens you requested exceeds the model limit of {limit}. "
        f"Try again with a maximum tokens value that is lower than {limit}."
    )


@pytest.mark.parametrize("model_id", HAIKU_FORMS)
def test_profiles_and_arns_resolve_to_the_base_models_rule(client, model_id):
    # `anthropic.claude-3-haiku*` allows 4096 output tokens; the catch-all `anthropic.*` rule would allow 8192.
    assert limit_error(client, model_id, 4097) == over_limit(4096)


def test_a_different_model_of_the_same_provider_gets_its_own_limit(client):
    # Bedrock's own limits (models/bedrock-models.yaml): Claude Sonnet 4 writes up to 64,000 tokens, Opus 4.1 32,000.
    assert limit_error(client, "us.anthropic.claude-sonnet-4-20250514-v1:0", 64001) == over_limit(64000)
    assert limit_error(client, "us.anthropic.claude-opus-4-1-20250805-v1:0", 32001) == over_limit(32000)


@pytest.mark.parametrize(("model_id", "native_stop_reason"), RESOURCE_ARNS.items())
def test_resource_arns_resolve_to_their_rules(client, model_id, native_stop_reason):
    reply = client.converse(
        modelId=model_id, messages=[user("Hi")], inferenceConfig={"temperature": 0, "maxTokens": 1},
        additionalModelResponseFieldPaths=["/stop_reason"],
    )
    assert reply["stopReason"] == "max_tokens"
    assert reply["additionalModelResponseFields"] == {"stop_reason": native_stop_reason}


@pytest.mark.parametrize("model_id", [HAIKU_FORMS[1], HAIKU_FORMS[6], HAIKU_FORMS[8]])
def test_converse_answers_through_profiles_and_arns(client, model_id):
    reply = client.converse(
        modelId=model_id, messages=[user("Hi")], inferenceConfig={"temperature": 0, "maxTokens": 1},
        additionalModelResponseFieldPaths=["/model", "/stop_reason"],
    )
    assert reply["stopReason"] == "max_tokens"
    assert reply["usage"]["outputTokens"] == 1
    # Anthropic's native body names the model the way Claude does, whatever form of id was used.
    assert reply["additionalModelResponseFields"] == {"model": "claude-3-haiku-20240307", "stop_reason": "max_tokens"}


@pytest.mark.parametrize(
    "model_id",
    [
        "..",
        "...",
        "catalog.yaml",
        "models",
        "smollm2-135m-instruct",  # a local model's name in the catalog is not a Bedrock model id
        "SmolLM2-135M-Instruct",
        "anthropic",
        "us.",
        f"arn:aws:bedrock:us-east-1:{ACCOUNT}:prompt/PROMPT1234",  # a Prompt management ARN: no model behind it here
    ],
)
def test_ids_that_name_files_or_nothing_are_invalid_identifiers(client, model_id):
    with pytest.raises(client.exceptions.ValidationException) as caught:
        client.converse(modelId=model_id, messages=[user("Hi")], inferenceConfig={"maxTokens": 1})
    assert caught.value.response["Error"]["Message"] == "The provided model identifier is invalid."


def test_the_model_folder_path_is_not_a_model_id(client, server):
    folder = str(default_engine(server).model.tokenizer.name_or_path)
    assert Path(folder).is_dir()
    for model_id in (folder, Path(folder).name):
        with pytest.raises(client.exceptions.ValidationException):
            client.converse(modelId=model_id, messages=[user("Hi")], inferenceConfig={"maxTokens": 1})


def test_a_users_catalog_maps_exact_ids_and_patterns(tmp_path):
    catalog_file = tmp_path / "catalog.yaml"
    catalog_file.write_text(
        "local_models:\n"
        "  mine: {kind: text, path: /models/my-hf-folder}\n"
        "models:\n"
        "  - {id: 'acme.exact-model-v1:0', family: anthropic, local: mine, max_output_tokens: 100}\n"
        "  - {match: 'acme.*', family: llama, local: mine, max_output_tokens: 200}\n"
    )
    catalog = Catalog.load(catalog_file)
    assert catalog.lookup("acme.exact-model-v1:0").max_output_tokens == 100
    assert catalog.lookup("us.acme.exact-model-v1:0").max_output_tokens == 100
    assert catalog.lookup("arn:aws:bedrock:us-east-1::foundation-model/acme.other-v2").max_output_tokens == 200
    assert catalog.local(catalog.lookup("acme.other-v2")).path == "/models/my-hf-folder"
    assert catalog.lookup("acme.other-v2").family == "llama"
    with pytest.raises(BedrockError) as caught:
        catalog.lookup("/models/my-hf-folder")
    assert caught.value.message == "The provided model identifier is invalid."


def test_with_bedrocks_list_globs_match_only_real_ids_and_id_rules_any(tmp_path):
    catalog_file = tmp_path / "catalog.yaml"
    catalog_file.write_text(
        "bedrock_models: bedrock-models.yaml\n"  # not beside this file: the bundled list
        "local_models:\n"
        "  mine: {kind: text, path: /models/my-hf-folder}\n"
        "models:\n"
        "  - {id: 'acme.exact-model-v1:0', family: llama, local: mine}\n"
        "  - {match: 'anthropic.*', local: mine}\n"
    )
    catalog = Catalog.load(catalog_file)
    entry = catalog.lookup("eu.anthropic.claude-3-7-sonnet-20250219-v1:0")
    assert (entry.family, entry.max_output_tokens, entry.local) == ("anthropic", 64000, "mine")
    assert (catalog.lookup("acme.exact-model-v1:0").family, catalog.lookup("acme.exact-model-v1:0").max_output_tokens) == (
        "llama", 4096)
    for unknown in ("anthropic.claude-9-v1:0", "meta.llama3-8b-instruct-v1:0"):  # not real / no rule
        with pytest.raises(BedrockError) as caught:
            catalog.lookup(unknown)
        assert caught.value.message == "The provided model identifier is invalid."


def test_a_bedrock_list_entry_without_a_source_is_refused(tmp_path):
    (tmp_path / "bedrock-models.yaml").write_text(
        "sources: {aws: https://docs.aws.amazon.com/bedrock/}\n"
        "models:\n"
        "  - {id: a.b-v1, family: llama, max_output_tokens: 10, context_window: 100, streaming: true, tools: [],"
        " input: [], profiles: [], source: nowhere}\n"
    )
    (tmp_path / "catalog.yaml").write_text("bedrock_models: bedrock-models.yaml\nmodels: []\n")
    with pytest.raises(SystemExit) as caught:
        Catalog.load(tmp_path / "catalog.yaml")
    assert "cites unknown source 'nowhere'" in str(caught.value)


def test_an_unknown_family_or_a_capability_its_family_lacks_fails_when_the_catalogue_loads(tmp_path):
    (tmp_path / "bedrock-models.yaml").write_text(
        "sources: {aws: https://docs.aws.amazon.com/bedrock/}\n"
        "models:\n"
        "  - {id: a.b-v1, family: titan-text, max_output_tokens: 10, context_window: 100, streaming: true,"
        " tools: [auto], input: [video], profiles: [], source: aws}\n"
        "  - {id: a.c-v1, family: ai21-j2, max_output_tokens: 10, context_window: 100, streaming: true,"
        " tools: [], input: [], profiles: [], source: aws}\n"
        "  - {id: a.d-v1, family: nova-reel, max_output_tokens: null, context_window: 100, streaming: false,"
        " tools: [], input: [image], profiles: [], source: aws}\n"
    )
    (tmp_path / "catalog.yaml").write_text(
        "bedrock_models: bedrock-models.yaml\nmodels:\n  - {match: 'acme.*', family: antropic}\n  - {match: '*'}\n")
    with pytest.raises(SystemExit) as caught:
        build_app(Settings(catalog_path=tmp_path / "catalog.yaml"))
    assert str(caught.value).splitlines()[1:5] == [
        "  rule 'acme.*' names unknown family 'antropic'",
        "  model 'a.b-v1' takes tool choices ['auto'], but family 'titan-text' does not",
        "  model 'a.b-v1' reads ['video'] in Converse, but family 'titan-text' does not",
        "  model 'a.c-v1' streams, but family 'ai21-j2' does not",
    ]  # a family Bedrock has and the emulator does not serve (Nova Reel) is no error: its calls say so
