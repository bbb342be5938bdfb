// Guardrails through the AWS SDK for JavaScript v3: CreateGuardrail on the control plane, then Converse and
// ConverseStream (sync and async) with guardrailConfig; prints one JSON line per case. Usage: EP=http://... node guardrails.mjs
import { BedrockClient, CreateGuardrailCommand, DeleteGuardrailCommand } from "@aws-sdk/client-bedrock";
import { BedrockRuntimeClient, ConverseCommand, ConverseStreamCommand } from "@aws-sdk/client-bedrock-runtime";
import { NodeHttpHandler } from "@smithy/node-http-handler";

const EP = process.env.EP;
const MODEL = "anthropic.claude-3-haiku-20240307-v1:0";
const common = { endpoint: EP, region: "us-east-1", credentials: { accessKeyId: "testing", secretAccessKey: "testing" },
  maxAttempts: 1, requestHandler: new NodeHttpHandler() };  // HTTP/1.1 (the runtime client's default is HTTP/2)
const control = new BedrockClient(common);
const runtime = new BedrockRuntimeClient(common);
const script = (text) => fetch(`${EP}/_emulator/rules`, {
  method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ respond: { text }, times: 1 }),
});
const print = (value) => console.log(JSON.stringify(value));

const created = await control.send(new CreateGuardrailCommand({
  name: `js-${Date.now()}`,
  blockedInputMessaging: process.env.BLOCKED_INPUT,
  blockedOutputsMessaging: process.env.BLOCKED_OUTPUT,
  topicPolicyConfig: { topicsConfig: [{ name: "Investment advice", definition: "Where to invest money.", type: "DENY" }] },
  sensitiveInformationPolicyConfig: { piiEntitiesConfig: [{ type: "EMAIL", action: "ANONYMIZE" }] },
}));
const guardrailConfig = (mode) => ({ guardrailIdentifier: created.guardrailId, guardrailVersion: "DRAFT", trace: "enabled",
  ...(mode ? { streamProcessingMode: mode } : {}) });
print({ case: "created", id: created.guardrailId, version: created.version, createdAt: created.createdAt instanceof Date });

const asked = (text) => [{ role: "user", content: [{ text }] }];
const blocked = await runtime.send(new ConverseCommand({ modelId: MODEL, messages: asked("Investment advice, please."),
  guardrailConfig: guardrailConfig() }));
print({ case: "converse-block", stopReason: blocked.stopReason, text: blocked.output.message.content[0].text,
  topics: blocked.trace.guardrail.inputAssessment[created.guardrailId].topicPolicy.topics });

for (const mode of ["sync", "async"]) {
  for (const [name, question, answer] of [["block", "Investment advice, please.", null],
                                          ["mask", "Who gets it?", "Send it to jane@example.com today."]]) {
    if (answer) await script(answer);
    const reply = await runtime.send(new ConverseStreamCommand({ modelId: MODEL, messages: asked(question),
      guardrailConfig: guardrailConfig(mode) }));
    let text = "", stopReason, trace;
    for await (const event of reply.stream) {
      if (event.contentBlockDelta) text += event.contentBlockDelta.delta.text;
      if (event.messageStop) stopReason = event.messageStop.stopReason;
      if (event.metadata) trace = event.metadata.trace;
    }
    const outputs = trace.guardrail.outputAssessments?.[created.guardrailId];
    print({ case: `stream-${name}-${mode}`, text, stopReason,
      pii: outputs?.[0]?.sensitiveInformationPolicy?.piiEntities ?? null,
      inputTopics: trace.guardrail.inputAssessment[created.guardrailId].topicPolicy?.topics ?? null });
  }
}
await control.send(new DeleteGuardrailCommand({ guardrailIdentifier: created.guardrailId }));
