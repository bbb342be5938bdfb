// Replays recorded calls through the AWS SDK for JavaScript v3. CALLS is a JSON list of {name, op, params}
// (params in the SDK's input shape; an InvokeModel `body` as a string). Prints one JSON line per call: the reply
// (blobs decoded to text, streams as their event list) or the error. Usage: EP=http://... CALLS=[...] node replay.mjs
import {
  BedrockRuntimeClient, ConverseCommand, ConverseStreamCommand, CountTokensCommand, InvokeModelCommand,
  InvokeModelWithResponseStreamCommand,
} from "@aws-sdk/client-bedrock-runtime";
import { NodeHttpHandler } from "@smithy/node-http-handler";

const COMMANDS = {
  Converse: ConverseCommand, ConverseStream: ConverseStreamCommand, CountTokens: CountTokensCommand,
  InvokeModel: InvokeModelCommand, InvokeModelWithResponseStream: InvokeModelWithResponseStreamCommand,
};
const text = (bytes) => new TextDecoder().decode(bytes);
// HTTP/1.1: the JS SDK's default handler speaks HTTP/2 only.
const client = new BedrockRuntimeClient({
  endpoint: process.env.EP, region: "us-east-1", maxAttempts: 1, requestHandler: new NodeHttpHandler(),
  credentials: { accessKeyId: "AKIDJSCLIENT", secretAccessKey: "js-client-secret" },
});

for (const call of JSON.parse(process.env.CALLS)) {
  const params = { ...call.params };
  if (typeof params.body === "string") params.body = new TextEncoder().encode(params.body);
  const out = { name: call.name };
  try {
    const reply = await client.send(new COMMANDS[call.op](params));
    delete reply.$metadata;
    const stream = reply.stream ?? (call.op === "InvokeModelWithResponseStream" ? reply.body : undefined);
    if (stream) {
      out.events = [];
      for await (const event of stream) {
        out.events.push(event.chunk ? { chunk: { bytes: text(event.chunk.bytes) } } : event);
      }
      delete reply.stream;
      delete reply.body;
    } else if (reply.body) {
      reply.body = text(reply.body);
    }
    out.reply = reply;
  } catch (error) {
    out.error = { name: error.name, message: error.message, status: error.$metadata?.httpStatusCode };
  }
  console.log(JSON.stringify(out));
}
