// The Vercel AI SDK against threadline's POST /v1/responses: node responses.mjs <base url ending in /v1>.
// Prints one JSON object with what each call saw; tests/clients/test_vercel_ai_sdk.py scripts the fake model and
// checks it.
import { createOpenResponses } from '@ai-sdk/open-responses';
import { createOpenAI } from '@ai-sdk/openai';
import { generateText, isStepCount, streamText, tool } from 'ai';
import { z } from 'zod';

const baseURL = process.argv[2];
const out = {};

// 1. The Open Responses provider: a plain completion.
const openResponses = createOpenResponses({ name: 'threadline', url: `${baseURL}/responses`, apiKey: 'test' });
const plain = await generateText({ model: openResponses('gpt-4o'), prompt: 'Say hello in exactly 3 words.' });
out.openResponsesText = plain.text;
out.openResponsesFinish = plain.finishReason;
out.openResponsesUsage = plain.usage;

// 2. The OpenAI provider's Responses model, streamed.
const openai = createOpenAI({ baseURL, apiKey: 'test' });
const streamed = streamText({ model: openai.responses('gpt-4o'), prompt: 'Count from 1 to 5.' });
let text = '';
for await (const delta of streamed.textStream) text += delta;
out.streamedText = text;
out.streamedFinish = await streamed.finishReason;

// 3. A function tool round trip: the SDK runs the tool and sends its output back in a second request.
const calls = [];
const withTool = await generateText({
  model: openai.responses('gpt-4o'),
  prompt: 'What is the weather in Paris?',
  tools: {
    get_weather: tool({
      description: 'The weather in a city.',
      inputSchema: z.object({ city: z.string() }),
      execute: async ({ city }) => {
        calls.push(city);
        return `sunny in ${city}`;
      },
    }),
  },
  stopWhen: isStepCount(2),
});
out.toolCalls = calls;
out.toolSteps = withTool.steps.length;
out.toolText = withTool.text;

console.log(JSON.stringify(out));
