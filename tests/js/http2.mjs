// The AWS SDK for JavaScript v3 with its DEFAULT client (its HTTP/2 request handler, no options), as a new user
// writes it: every operation, a modeled error, and 32 ConverseStreams multiplexed on its one connection.
// Over https the local CA comes from NODE_EXTRA_CA_CERTS. Prints one JSON line per case.
// Usage: EP=http://127.0.0.1:PORT node http2.mjs
import { NodeHttp2Handler } from "@smithy/node-http-handler";
import {
  ApplyGuardrailCommand, BedrockRuntimeClient, ConverseCommand, ConverseStreamCommand, CountTokensCommand,
  InvokeModelCommand, InvokeModelWithResponseStreamCommand,
} from "@aws-sdk/client-bedrock-runtime";

const MODEL = "anthropic.claude-3-haiku-20240307-v1:0";
const client = new BedrockRuntimeClient({
  endpoint: process.env.EP, region: "us-east-1", credentials: { accessKeyId: "testing", secretAccessKey: "testing" },
  maxAttempts: 1,
});
const user = (text) => [{ role: "user", content: [{ text }] }];
const out = (line) => console.log(JSON.stringify(line));
const streamText = async (stream) => {
  const seen = [];
  let text = "";
  for await (const event of stream) {
    const name = Object.keys(event)[0];
    seen.push(name);
    if (name === "contentBlockDelta") text += event.contentBlockDelta.delta.text;
  }
  return { text, first: seen[0], last: seen.at(-1) };
};

// 32 at once, each must get its own scripted text, whole. The default client gives every Bedrock Runtime call
// its own HTTP/2 session (its runtime config sets disableConcurrentStreams, and event streams always get one) and
// closes that session with GOAWAY as soon as the response headers arrive, reading the body after. The same SDK
// handler with concurrent streams allowed multiplexes plain calls on one session (MODE=multiplexed).
const many = async (c, Command) => Promise.all([...Array(32).keys()].map(async (i) => {
  const reply = await c.send(new Command({ modelId: MODEL, messages: user(`stream-${i}.`) }));
  return reply.stream ? (await streamText(reply.stream)).text : reply.output.message.content[0].text;
}));

if (process.env.MODE === "multiplexed") {
  const shared = new BedrockRuntimeClient({
    endpoint: process.env.EP, region: "us-east-1", credentials: { accessKeyId: "testing", secretAccessKey: "testing" },
    maxAttempts: 1, requestHandler: new NodeHttp2Handler({ disableConcurrentStreams: false }),
  });
  out({ case: "multiplexed", texts: await many(shared, ConverseCommand) });
  shared.destroy();
  process.exit(0);
}

const converse = await client.send(new ConverseCommand({ modelId: MODEL, messages: user("hello") }));
out({ case: "Converse", text: converse.output.message.content[0].text, stop: converse.stopReason,
      status: converse.$metadata.httpStatusCode, requestId: converse.$metadata.requestId });

const streamed = await client.send(new ConverseStreamCommand({ modelId: MODEL, messages: user("hello") }));
out({ case: "ConverseStream", ...(await streamText(streamed.stream)) });

const native = { anthropic_version: "bedrock-2023-05-31", max_tokens: 50, messages: [{ role: "user", content: "hello" }] };
const invoked = await client.send(new InvokeModelCommand({ modelId: MODEL, body: JSON.stringify(native) }));
const body = JSON.parse(new TextDecoder().decode(invoked.body));
out({ case: "InvokeModel", text: body.content[0].text, contentType: invoked.contentType });

const invokedStream = await client.send(
  new InvokeModelWithResponseStreamCommand({ modelId: MODEL, body: JSON.stringify(native) }));
let nativeText = "";
const types = [];
for await (const event of invokedStream.body) {
  const chunk = JSON.parse(new TextDecoder().decode(event.chunk.bytes));
  types.push(chunk.type);
  if (chunk.type === "content_block_delta") nativeText += chunk.delta.text;
}
out({ case: "InvokeModelWithResponseStream", text: nativeText, first: types[0], last: types.at(-1) });

const counted = await client.send(new CountTokensCommand({
  modelId: MODEL, input: { converse: { messages: user("hello there") } } }));
out({ case: "CountTokens", inputTokens: counted.inputTokens });

const guarded = await client.send(new ApplyGuardrailCommand({
  guardrailIdentifier: process.env.GUARDRAIL, guardrailVersion: "DRAFT", source: "INPUT",
  content: [{ text: { text: "a harmless sentence" } }] }));
out({ case: "ApplyGuardrail", action: guarded.action });

try {
  await client.send(new ConverseCommand({ modelId: "no.such-model-v1:0", messages: user("hello") }));
  out({ case: "error", name: "none" });
} catch (error) {
  out({ case: "error", name: error.name, status: error.$metadata.httpStatusCode, message: error.message });
}

out({ case: "concurrent", texts: await many(client, ConverseStreamCommand) });
client.destroy();
