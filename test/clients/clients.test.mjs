// Real OpenAI-ecosystem clients against `tollgate run` (emulated front + built-in mock provider),
// started by clients_test.go, which passes the gateway's base URL in TOLLGATE_URL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI, { AzureOpenAI } from 'openai';
import { ChatOpenAI, OpenAIEmbeddings } from '@langchain/openai';
import { generateText, streamText, embed } from 'ai';
import { createOpenAI } from '@ai-sdk/openai';
import Anthropic from '@anthropic-ai/sdk';

const base = process.env.TOLLGATE_URL;
if (!base) throw new Error('TOLLGATE_URL is not set: run these tests through clients_test.go');
const apiKey = 'tg_demo_0123456789abcdefghijklmnopqrstuvwxyzAB';
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey, maxRetries: 0 });

test('openai: chat completion', async () => {
  const r = await client.chat.completions.create({ model: 'smart-default', messages: [{ role: 'user', content: 'Hello' }] });
  assert.match(r.choices[0].message.content, /You said: Hello/);
  assert.ok(r.usage.total_tokens > 0);
});

test('openai: chat completion with the raw response headers', async () => {
  const { response } = await client.chat.completions
    .create({ model: 'smart-default', messages: [{ role: 'user', content: 'Hello' }] })
    .withResponse();
  assert.equal(response.headers.get('x-tollgate-provider'), 'mock');
  assert.ok(response.headers.get('x-tollgate-cost-usd') !== null);
});

test('openai: stream with usage', async () => {
  const stream = await client.chat.completions.create({
    model: 'fast-default', stream: true, stream_options: { include_usage: true },
    messages: [{ role: 'user', content: 'count' }],
  });
  let text = '';
  let usage;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? '';
    if (chunk.usage) usage = chunk.usage;
  }
  assert.match(text, /You said: count/);
  assert.ok(usage && usage.completion_tokens > 0);
});

test('openai: tools', async () => {
  const r = await client.chat.completions.create({
    model: 'smart-default',
    messages: [{ role: 'user', content: 'weather in Paris?' }],
    tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: {} } } }],
  });
  assert.equal(r.choices[0].finish_reason, 'tool_calls');
  assert.equal(r.choices[0].message.tool_calls[0].function.name, 'get_weather');
});

test('openai: embeddings (the SDK asks for base64)', async () => {
  const r = await client.embeddings.create({ model: 'embed-default', input: ['a', 'b'] });
  assert.equal(r.data.length, 2);
  assert.equal(r.data[0].embedding.length, 8);
});

test('openai: models list', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.ok(ids.includes('smart-default'), ids.join(','));
});

test('openai: typed errors', async () => {
  const bad = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'tg_not_a_key', maxRetries: 0 });
  await assert.rejects(bad.models.list(), OpenAI.AuthenticationError);
  await assert.rejects(
    client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }),
    (e) => e instanceof OpenAI.NotFoundError || e instanceof OpenAI.BadRequestError,
  );
  await assert.rejects(
    client.chat.completions.create({ model: 'smart-default', messages: [{ role: 'user', content: '[mock:500]' }] }),
    OpenAI.InternalServerError,
  );
});

test('openai: AzureOpenAI class', async () => {
  const az = new AzureOpenAI({ endpoint: base, apiKey, apiVersion: '2024-10-21', deployment: 'smart-default', maxRetries: 0 });
  const r = await az.chat.completions.create({ model: 'smart-default', messages: [{ role: 'user', content: 'Hello' }] });
  assert.match(r.choices[0].message.content, /You said: Hello/);
});

test('openai: models.retrieve (GET /v1/models/{id})', async () => {
  const m = await client.models.retrieve('smart-default');
  assert.equal(m.id, 'smart-default');
});

test('openai: AzureOpenAI models list (GET /openai/models)', async () => {
  const az = new AzureOpenAI({ endpoint: base, apiKey, apiVersion: '2024-10-21', maxRetries: 0 });
  const page = await az.models.list();
  assert.ok(page.data.length > 0);
});

test('openai: responses API (POST /v1/responses), plain and streamed', async () => {
  const r = await client.responses.create({ model: 'smart-default', instructions: 'Be brief.', input: 'Hello' });
  assert.match(r.output_text, /Hello/);
  assert.ok(r.usage.output_tokens > 0);
  const stream = await client.responses.create({ model: 'fast-default', input: 'streamed', stream: true });
  let text = '';
  let completed;
  for await (const ev of stream) {
    if (ev.type === 'response.output_text.delta') text += ev.delta;
    if (ev.type === 'response.completed') completed = ev.response;
  }
  assert.match(text, /streamed/);
  assert.ok(completed && completed.usage.total_tokens > 0);
});

test('openai: responses API refuses what a chat provider cannot serve', async () => {
  await assert.rejects(
    client.responses.create({ model: 'smart-default', input: 'Hello', previous_response_id: 'resp_1' }),
    (err) => err.status === 400 && err.code === 'unsupported_parameter' && err.param === 'previous_response_id',
  );
});

test('langchain: ChatOpenAI invoke and stream', async () => {
  const llm = new ChatOpenAI({ model: 'smart-default', apiKey, configuration: { baseURL: `${base}/v1` }, maxRetries: 0 });
  const msg = await llm.invoke('Hello');
  assert.match(String(msg.content), /You said: Hello/);
  let text = '';
  for await (const chunk of await llm.stream('streamed')) text += chunk.content;
  assert.match(text, /You said: streamed/);
});

test('langchain: ChatOpenAI with useResponsesApi, invoke and stream', async () => {
  const llm = new ChatOpenAI({
    model: 'smart-default', apiKey, configuration: { baseURL: `${base}/v1` }, maxRetries: 0, useResponsesApi: true,
  });
  const msg = await llm.invoke('Hello');
  assert.match(String(msg.text ?? msg.content), /Hello/);
  let text = '';
  for await (const chunk of await llm.stream('streamed')) text += chunk.text ?? '';
  assert.match(text, /streamed/);
});

test('langchain: OpenAIEmbeddings', async () => {
  const e = new OpenAIEmbeddings({ model: 'embed-default', apiKey, configuration: { baseURL: `${base}/v1` }, maxRetries: 0 });
  const v = await e.embedQuery('hello');
  assert.equal(v.length, 8);
});

const vercel = createOpenAI({ baseURL: `${base}/v1`, apiKey });

test('vercel ai: generateText and streamText (chat API)', async () => {
  const r = await generateText({ model: vercel.chat('smart-default'), prompt: 'Hello', maxRetries: 0 });
  assert.match(r.text, /You said: Hello/);
  const s = streamText({ model: vercel.chat('fast-default'), prompt: 'streamed', maxRetries: 0 });
  let text = '';
  for await (const part of s.textStream) text += part;
  assert.match(text, /You said: streamed/);
});

test('vercel ai: embed', async () => {
  const r = await embed({ model: vercel.textEmbeddingModel('embed-default'), value: 'hello', maxRetries: 0 });
  assert.equal(r.embedding.length, 8);
});

test('vercel ai: default model (responses API), generateText and streamText', async () => {
  const r = await generateText({ model: vercel('smart-default'), prompt: 'Hello', maxRetries: 0 });
  assert.match(r.text, /Hello/);
  const s = streamText({ model: vercel('fast-default'), prompt: 'streamed', maxRetries: 0 });
  let text = '';
  for await (const part of s.textStream) text += part;
  assert.match(text, /streamed/);
});

// The Anthropic SDK against /v1/messages: the mock answers the request translated to chat,
// and the gateway answers in Anthropic's format (docs/providers.md, "Anthropic Messages").
const anthropic = new Anthropic({ baseURL: base, apiKey, maxRetries: 0 });

test('anthropic: messages', async () => {
  const m = await anthropic.messages.create({
    model: 'smart-default', max_tokens: 64, system: 'Be brief.',
    messages: [{ role: 'user', content: 'Hello' }],
  });
  assert.equal(m.type, 'message');
  assert.match(m.content[0].text, /You said: Hello/);
  assert.equal(m.stop_reason, 'end_turn');
  assert.ok(m.usage.output_tokens > 0);
});

test('anthropic: streaming messages', async () => {
  const stream = anthropic.messages.stream({
    model: 'fast-default', max_tokens: 64, messages: [{ role: 'user', content: 'count' }],
  });
  let text = '';
  stream.on('text', (t) => { text += t; });
  const m = await stream.finalMessage();
  assert.match(text, /You said: count/);
  assert.equal(m.content[0].text, text);
  assert.ok(m.usage.output_tokens > 0);
});

test('anthropic: count_tokens is an estimate off Anthropic', async () => {
  const { data, response } = await anthropic.messages
    .countTokens({ model: 'smart-default', messages: [{ role: 'user', content: 'Hello' }] })
    .withResponse();
  assert.ok(data.input_tokens > 0);
  assert.equal(response.headers.get('x-tollgate-estimated'), 'true');
});

test('anthropic: a bad key is an Anthropic authentication error', async () => {
  const bad = new Anthropic({ baseURL: base, apiKey: 'tg_wrong', maxRetries: 0 });
  await assert.rejects(
    bad.messages.create({ model: 'smart-default', max_tokens: 8, messages: [{ role: 'user', content: 'Hi' }] }),
    (err) => err instanceof Anthropic.AuthenticationError && err.status === 401 && err.error?.error?.type === 'authentication_error',
  );
});
