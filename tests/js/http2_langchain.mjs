// LangChain.js (`@langchain/aws`) as its docs show it: ChatBedrockConverse builds the JS SDK's DEFAULT client
// (HTTP/2). Its `endpointHost` is always https, so this runs against `--tls` with the local CA trusted through
// NODE_EXTRA_CA_CERTS. One invoke and one stream. Usage: HOST=127.0.0.1:PORT node http2_langchain.mjs
import { ChatBedrockConverse } from "@langchain/aws";

const model = new ChatBedrockConverse({
  model: "anthropic.claude-3-haiku-20240307-v1:0", region: "us-east-1", endpointHost: process.env.HOST,
  credentials: { accessKeyId: "testing", secretAccessKey: "testing" }, maxRetries: 0,
});
const reply = await model.invoke("hello");
let streamed = "";
for await (const chunk of await model.stream("hello")) streamed += chunk.content;
console.log(JSON.stringify({ invoke: reply.content, stream: streamed }));
