// Injected faults as the AWS SDK for JavaScript v3 sees them: its retry decision per exception, and in-stream
// exceptions thrown as the modeled classes. Prints one JSON line per case. Usage: EP=http://... node faults.mjs
import { BedrockRuntimeClient, ConverseCommand, ConverseStreamCommand } from "@aws-sdk/client-bedrock-runtime";

const EP = process.env.EP;
const MODEL = "anthropic.claude-3-haiku-20240307-v1:0";
const messages = [{ role: "user", content: [{ text: "hello" }] }];
// The default client: HTTP/2 (h2c), as users run it.
const client = new BedrockRuntimeClient({
  endpoint: EP, region: "us-east-1", credentials: { accessKeyId: "testing", secretAccessKey: "testing" },
  maxAttempts: 3,
});
const admin = async (method, path, body) => {
  const reply = await fetch(`${EP}/_emulator${path}`, {
    method, headers: { "content-type": "application/json" }, body: body ? JSON.stringify(body) : undefined,
  });
  return reply.json();
};

await admin("POST", "/rules", { respond: { text: "one two three four" } });
for (const code of JSON.parse(process.env.CODES)) {
  await admin("DELETE", "/invocations");
  await admin("POST", "/faults", { error: code, count: 1 });
  const result = { code };
  try {
    const reply = await client.send(new ConverseCommand({ modelId: MODEL, messages }));
    result.outcome = "ok";
    result.attempts = reply.$metadata.attempts;
  } catch (error) {
    result.outcome = error.name;
    result.status = error.$metadata.httpStatusCode;
    result.attempts = error.$metadata.attempts;
  }
  result.requests = (await admin("GET", "/invocations")).invocations.length;
  console.log(JSON.stringify(result));
}
for (const member of JSON.parse(process.env.MEMBERS)) {
  await admin("POST", "/faults", { error: member, after_events: 2, count: 1 });
  const reply = await client.send(new ConverseStreamCommand({ modelId: MODEL, messages }));
  const seen = [];
  const result = { member };
  try {
    for await (const event of reply.stream) seen.push(Object.keys(event)[0]);
  } catch (error) {
    result.thrown = error.name;
  }
  result.seen = seen;
  console.log(JSON.stringify(result));
}
