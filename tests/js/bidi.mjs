// Nova Sonic sessions through the AWS SDK for JavaScript v3 with its DEFAULT client (HTTP/2), the way voice
// agents drive InvokeModelWithBidirectionalStream: input events are written while output events are read.
// SCENARIO = text | tools | audio | leave. Prints one JSON line: the output events seen (summarised) per turn.
// Usage: EP=http://127.0.0.1:PORT SCENARIO=text node bidi.mjs
import { BedrockRuntimeClient, InvokeModelWithBidirectionalStreamCommand } from "@aws-sdk/client-bedrock-runtime";

const client = new BedrockRuntimeClient({
  endpoint: process.env.EP, region: "us-east-1", credentials: { accessKeyId: "testing", secretAccessKey: "testing" },
  maxAttempts: 1,
});
const PROMPT = "prompt-1";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

// The request body: an async iterable the test keeps feeding (as a microphone loop would).
function channel() {
  const queue = [];
  let wake = null;
  let closed = false;
  return {
    push(event) { queue.push(event); wake?.(); },
    close() { closed = true; wake?.(); },
    async *[Symbol.asyncIterator]() {
      while (true) {
        while (queue.length) yield { chunk: { bytes: encoder.encode(JSON.stringify({ event: queue.shift() })) } };
        if (closed) return;
        await new Promise((resolve) => { wake = resolve; });
        wake = null;
      }
    },
  };
}

const input = channel();
const send = (name, body) => input.push({ [name]: body });
const textContent = (name, role, content, interactive) => {
  send("contentStart", { promptName: PROMPT, contentName: name, type: "TEXT", role, interactive,
    textInputConfiguration: { mediaType: "text/plain" } });
  send("textInput", { promptName: PROMPT, contentName: name, content });
  send("contentEnd", { promptName: PROMPT, contentName: name });
};
const scenario = process.env.SCENARIO;
const tools = scenario === "tools" ? {
  toolUseOutputConfiguration: { mediaType: "application/json" },
  toolConfiguration: { tools: [{ toolSpec: { name: "getWeather", description: "Get the current weather for a city",
    inputSchema: { json: JSON.stringify({ type: "object", properties: { city: { type: "string" } }, required: ["city"] }) } } }] },
} : {};

send("sessionStart", { inferenceConfiguration: { maxTokens: scenario === "leave" ? 1000 : 40, topP: 0.9, temperature: 0 } });
send("promptStart", {
  promptName: PROMPT, textOutputConfiguration: { mediaType: "text/plain" },
  audioOutputConfiguration: { mediaType: "audio/lpcm", sampleRateHertz: 24000, sampleSizeBits: 16, channelCount: 1,
    voiceId: "matthew", encoding: "base64", audioType: "SPEECH" },
  ...tools,
});
textContent("system", "SYSTEM", "You are a helpful assistant. Keep answers short.", false);

const abort = new AbortController();
// Not awaited yet: the SDK resolves `send` only once the first output event has arrived, and that needs input.
const pending = client.send(new InvokeModelWithBidirectionalStreamCommand({
  modelId: "amazon.nova-sonic-v1:0", body: input,
}), { abortSignal: abort.signal });

const turns = [];
let turn = null;
const begin = () => { turn = { events: [], text: {}, audioBytes: 0, toolUse: null, ids: new Set() }; };
begin();

// What to send when a turn completes: each scenario's script.
let completions = 0;
const next = () => {
  completions += 1;
  if (scenario === "text" && completions === 1) return textContent("user-2", "USER", "And what is two plus two?", true);
  if (scenario === "audio") send("contentEnd", { promptName: PROMPT, contentName: "mic" });
  send("promptEnd", { promptName: PROMPT });
  send("sessionEnd", {});
  input.close();
};

if (scenario === "text" || scenario === "tools" || scenario === "leave") {
  const question = { text: "What is the capital of France?", tools: "What is the weather in Paris?",
    leave: "Write a very long story about a dragon." }[scenario];
  textContent("user-1", "USER", question, true);
} else if (scenario === "audio") {
  send("contentStart", { promptName: PROMPT, contentName: "mic", type: "AUDIO", interactive: true, role: "USER",
    audioInputConfiguration: { mediaType: "audio/lpcm", sampleRateHertz: 16000, sampleSizeBits: 16, channelCount: 1,
      audioType: "SPEECH", encoding: "base64" } });
  // 1.5 s of a loud tone ("speech"), then 1 s of silence, in 32 ms frames, as a microphone would send them.
  const frame = 512;
  for (let i = 0; i < 2.5 * 16000; i += frame) {
    const pcm = Buffer.alloc(frame * 2);
    for (let j = 0; j < frame; j++) pcm.writeInt16LE(i + j < 1.5 * 16000 ? Math.round(8000 * Math.sin((i + j) / 5)) : 0, j * 2);
    send("audioInput", { promptName: PROMPT, contentName: "mic", content: pcm.toString("base64") });
  }
}

let thrown = null;
try {
  const reply = await pending;
  for await (const part of reply.body) {
    const event = JSON.parse(decoder.decode(part.chunk.bytes)).event;
    const [name] = Object.keys(event);
    const body = event[name];
    let label = name;
    if (name === "contentStart") {
      const stage = body.additionalModelFields ? JSON.parse(body.additionalModelFields).generationStage : undefined;
      label = [name, body.type, body.role, stage].filter(Boolean).join("/");
    }
    if (name === "contentEnd" || name === "completionEnd") label = `${name}/${body.stopReason}`;
    if (name !== "audioOutput" || turn.events.at(-1) !== "audioOutput") turn.events.push(label);
    turn.ids.add(body.completionId);
    if (name === "textOutput") turn.text[body.role] = `${turn.text[body.role] ?? ""}|${body.content}`;
    if (name === "audioOutput") turn.audioBytes += Buffer.from(body.content, "base64").length;
    if (name === "usageEvent") turn.usage = { input: body.totalInputTokens, output: body.totalOutputTokens };
    if (name === "toolUse") {
      turn.toolUse = { name: body.toolName, input: JSON.parse(body.content) };
      send("contentStart", { promptName: PROMPT, contentName: "result-1", interactive: false, type: "TOOL", role: "TOOL",
        toolResultInputConfiguration: { toolUseId: body.toolUseId, type: "TEXT", textInputConfiguration: { mediaType: "text/plain" } } });
      send("toolResult", { promptName: PROMPT, contentName: "result-1", content: JSON.stringify({ forecast: "sunny, 21 C" }) });
      send("contentEnd", { promptName: PROMPT, contentName: "result-1" });
    }
    if (scenario === "leave" && name === "textOutput") {
      abort.abort();  // the caller hangs up mid-answer
      break;
    }
    if (name === "completionEnd") {
      turns.push({ ...turn, ids: turn.ids.size });
      begin();
      next();
    }
  }
} catch (error) {
  thrown = { name: error.name, message: error.message };
}
if (scenario === "leave") turns.push({ ...turn, ids: turn.ids.size });
console.log(JSON.stringify({ scenario, turns, thrown }));
process.exit(0);
