// The OpenAI JS SDK against the emulator's /openai/v1 (run by tests/test_openai_js.py). One JSON line per check.
import OpenAI from "openai";
import { zodResponseFormat, zodTextFormat } from "openai/helpers/zod";
import { z } from "zod";

const client = new OpenAI({ baseURL: process.env.EP + "/openai/v1", apiKey: "bedrock-api-key", maxRetries: 0 });
const model = "openai.gpt-oss-20b-1:0";
const out = (check, value) => console.log(JSON.stringify({ check, ...value }));
const weather = {
  type: "function",
  function: {
    name: "get_weather", description: "Get the weather for a city.",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"], additionalProperties: false },
  },
};
const ask = [{ role: "user", content: "What's the weather in Paris?" }];

const reply = await client.chat.completions.create({
  model, messages: [{ role: "user", content: "What is the capital of France?" }], max_tokens: 16, temperature: 0,
});
out("chat", { object: reply.object, content: reply.choices[0].message.content, usage: reply.usage,
  finish: reply.choices[0].finish_reason });

const stream = await client.chat.completions.create({
  model, messages: [{ role: "user", content: "What is the capital of France?" }], max_tokens: 16, temperature: 0,
  stream: true, stream_options: { include_usage: true },
});
let text = "", usage = null;
for await (const chunk of stream) {
  if (chunk.choices.length) text += chunk.choices[0].delta.content ?? "";
  if (chunk.usage) usage = chunk.usage;
}
out("stream", { text, usage });

const called = await client.chat.completions.create({ model, messages: ask, tools: [weather], tool_choice: "required",
  max_tokens: 60, temperature: 0 });
const call = called.choices[0].message.tool_calls[0];
const answered = await client.chat.completions.create({ model, tools: [weather], max_tokens: 20, temperature: 0,
  messages: [...ask, called.choices[0].message, { role: "tool", tool_call_id: call.id, content: "18 degrees" }] });
out("tools", { finish: called.choices[0].finish_reason, name: call.function.name, id: call.id,
  args: JSON.parse(call.function.arguments), answer: answered.choices[0].message.content,
  answerFinish: answered.choices[0].finish_reason });

const City = z.object({ name: z.string(), population: z.number().int() });
const parsed = await client.chat.completions.parse({ model, max_tokens: 60, temperature: 0,
  messages: [{ role: "user", content: "Name a big city and its population." }],
  response_format: zodResponseFormat(City, "city") });
out("parse", { parsed: parsed.choices[0].message.parsed });

const fn = { type: "function", name: "get_weather", parameters: weather.function.parameters, strict: true };
const first = await client.responses.create({ model, input: "What's the weather in Paris?", tools: [fn],
  tool_choice: "required", max_output_tokens: 60 });
const item = first.output[0];
const second = await client.responses.create({ model, tools: [fn], max_output_tokens: 30, input: [
  { role: "user", content: "What's the weather in Paris?" }, item,
  { type: "function_call_output", call_id: item.call_id, output: "18 degrees" }] });
out("responses", { type: item.type, name: item.name, args: JSON.parse(item.arguments), text: second.output_text });

const rs = client.responses.stream({ model, input: "Say hello.", max_output_tokens: 20, temperature: 0 });
const kinds = [];
let deltas = "";
for await (const event of rs) {
  kinds.push(event.type);
  if (event.type === "response.output_text.delta") deltas += event.delta;
}
const final = await rs.finalResponse();
out("responses_stream", { kinds, deltas, text: final.output_text });

const rp = await client.responses.parse({ model, input: "Name a big city and its population.", max_output_tokens: 60,
  temperature: 0, text: { format: zodTextFormat(City, "city") } });
out("responses_parse", { parsed: rp.output_parsed });

try {
  await client.responses.create({ model, input: "more", previous_response_id: "resp_1" });
  out("stateless", { thrown: null });
} catch (error) {
  out("stateless", { thrown: error.constructor.name, status: error.status, code: error.code, param: error.param,
    requestId: error.headers?.get?.("x-amzn-requestid") ?? null });
}
