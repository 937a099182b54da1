// Relay matrix driver (issue 10, points 2 and 6), run by e2e/relay_test.go.
//
// The official TypeScript SDK client, declaring sampling, elicitation (form
// and url), roots and tasks, exercises every relayed protocol feature against
// @modelcontextprotocol/server-everything, directly or through mcpmesh, and
// prints one line "RESULT {json}": {"features": {name: {ok, detail, value?}}}.
// A feature that fails is reported, never thrown: the caller decides.
//
// usage: node relay-matrix.mjs --sdk DIR/node_modules --transport http|sse|stdio
//          (--url URL | --command NODE --arg ARG ...) [--prefix P] [--wait MS]
// --prefix is the prefix of the server's tool and prompt names (mcpmesh's
// --prefix; '' for their own names); --wait bounds every wait for an event.
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

const { values: opt } = parseArgs({
  options: {
    sdk: { type: 'string' },
    transport: { type: 'string', default: 'http' },
    url: { type: 'string' },
    command: { type: 'string' },
    arg: { type: 'string', multiple: true, default: [] },
    prefix: { type: 'string', default: '' },
    wait: { type: 'string', default: '20000' },
  },
});
const require = createRequire(import.meta.url);
const sdk = (p) => import(require.resolve(`@modelcontextprotocol/sdk/${p}`, { paths: [opt.sdk] }));
const { Client } = await sdk('client/index.js');
const T = await sdk('types.js');

const P = opt.prefix;
const WAIT = Number(opt.wait);
const features = {};
const rec = (name, ok, detail = '', value) => {
  features[name] = { ok: !!ok, detail: String(detail).replace(/\s+/g, ' ').slice(0, 300) };
  if (value !== undefined) features[name].value = value;
};
const bounded = (p, ms, what) => {
  let timer;
  return Promise.race([p, new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`${what}: no answer within ${ms} ms`)), ms); })])
    .finally(() => clearTimeout(timer));
};
// until resolves when pred() holds: checked whenever an event arrives (kick),
// not on a timer, and given up after ms.
const waiters = new Set();
const kick = () => { for (const w of waiters) w(); };
const until = (pred, ms) => new Promise((res) => {
  if (pred()) return res(true);
  const w = () => { if (pred()) { done(); res(true); } };
  const timer = setTimeout(() => { done(); res(pred()); }, ms);
  const done = () => { clearTimeout(timer); waiters.delete(w); };
  waiters.add(w);
});

// What the server asked of the client, and what it told it.
const seen = { sampling: 0, elicitForm: 0, elicitUrl: 0, roots: 0, logs: [], updated: [], listChanged: { tools: 0, resources: 0, prompts: 0 } };
const client = new Client({ name: 'mcpmesh-relay-matrix', version: '1.0.0' }, {
  capabilities: {
    sampling: {},
    elicitation: { form: {}, url: {} },
    roots: { listChanged: true },
    tasks: { list: {}, cancel: {}, requests: { sampling: { createMessage: {} }, elicitation: { create: {} } } },
  },
});
client.setRequestHandler(T.CreateMessageRequestSchema, async () => {
  seen.sampling++; kick();
  return { model: 'relay-matrix-model', role: 'assistant', content: { type: 'text', text: 'relay-matrix sampled answer' } };
});
client.setRequestHandler(T.ElicitRequestSchema, async (req) => {
  if (req.params?.mode === 'url') { seen.elicitUrl++; kick(); return { action: 'accept' }; }
  seen.elicitForm++; kick();
  const content = {};
  for (const [k, s] of Object.entries(req.params?.requestedSchema?.properties ?? {})) {
    if (s.type === 'boolean') content[k] = true;
    else if (s.type === 'number' || s.type === 'integer') content[k] = s.minimum ?? 1;
    else if (s.enum) content[k] = s.enum[0];
    else if (s.oneOf) content[k] = s.oneOf[0]?.const;
    else if (s.type === 'array') content[k] = (s.items?.enum ?? s.items?.anyOf?.map((x) => x.const) ?? []).slice(0, 1);
    else if (s.format === 'email') content[k] = 'relay@example.com';
    else if (s.format === 'uri') content[k] = 'https://example.com';
    else if (s.format === 'date') content[k] = '2026-01-01';
    else content[k] = 'relay';
  }
  return { action: 'accept', content };
});
client.setRequestHandler(T.ListRootsRequestSchema, async () => {
  seen.roots++; kick();
  return { roots: [{ uri: 'file:///relay-matrix-root', name: 'relay-matrix-root' }] };
});
client.setNotificationHandler(T.LoggingMessageNotificationSchema, (n) => { seen.logs.push(n.params); kick(); });
client.setNotificationHandler(T.ResourceUpdatedNotificationSchema, (n) => { seen.updated.push(n.params.uri); kick(); });
client.setNotificationHandler(T.ToolListChangedNotificationSchema, () => { seen.listChanged.tools++; kick(); });
client.setNotificationHandler(T.ResourceListChangedNotificationSchema, () => { seen.listChanged.resources++; kick(); });
client.setNotificationHandler(T.PromptListChangedNotificationSchema, () => { seen.listChanged.prompts++; kick(); });

let transport;
if (opt.transport === 'http') {
  const { StreamableHTTPClientTransport } = await sdk('client/streamableHttp.js');
  transport = new StreamableHTTPClientTransport(new URL(opt.url));
} else if (opt.transport === 'sse') {
  const { SSEClientTransport } = await sdk('client/sse.js');
  transport = new SSEClientTransport(new URL(opt.url));
} else if (opt.transport === 'stdio') {
  const { StdioClientTransport } = await sdk('client/stdio.js');
  transport = new StdioClientTransport({ command: opt.command, args: opt.arg, stderr: 'ignore' });
} else {
  throw new Error(`unknown --transport ${opt.transport}`);
}

const finish = async (code) => {
  console.log('RESULT ' + JSON.stringify({ features }));
  await bounded(transport.terminateSession?.() ?? Promise.resolve(), 3000, 'terminate').catch(() => {});
  await bounded(client.close(), 3000, 'close').catch(() => {});
  process.exit(code);
};

try {
  await bounded(client.connect(transport), WAIT, 'connect');
  rec('initialize', true, JSON.stringify(client.getServerVersion()));
} catch (e) {
  rec('initialize', false, e.message);
  await finish(0);
}

const RPC = 30_000; // generous: the matrix runs its rows in parallel, alongside other tests
const text = (r) => (r?.content ?? []).map((c) => c.text ?? c.type).join(' ');
const call = (name, args = {}, opts = {}) =>
  bounded(client.callTool({ name: P + name, arguments: args }, undefined, { timeout: RPC, ...opts }), RPC + 1000, `tools/call ${name}`);
// feature runs one feature; an exception is its failure.
const feature = async (name, fn) => {
  const t0 = Date.now();
  try { await fn(); } catch (e) { if (!features[name]) rec(name, false, e?.message ?? String(e)); }
  if (features[name]) features[name].ms = Date.now() - t0;
};

// Capability-conditional tools appear only when the client's capabilities
// reach the server.
let tools = [];
await feature('tools', async () => {
  const all = (await bounded(client.listTools(), RPC, 'tools/list')).tools;
  tools = all.filter((t) => t.name.startsWith(P)).map((t) => ({ ...t, name: t.name.slice(P.length) }));
  const names = tools.map((t) => t.name).sort();
  const conditional = ['get-roots-list', 'trigger-sampling-request', 'trigger-elicitation-request', 'trigger-url-elicitation', 'simulate-research-query'];
  const missing = conditional.filter((n) => !names.includes(n));
  rec('tools', missing.length === 0, `${names.length} tools${missing.length ? `; missing ${missing}` : ''}`, names);
});
const listed = (n) => tools.some((t) => t.name === n);
const need = (n) => { if (!listed(n)) throw new Error(`${n} not listed`); };

await feature('ping', async () => { await bounded(client.ping(), RPC, 'ping'); rec('ping', true); });

await feature('progress', async () => {
  const prog = [];
  const r = await call('trigger-long-running-operation', { duration: 1, steps: 3 }, { onprogress: (p) => prog.push(p.progress) });
  // The SDK client may handle the result before the last notification (it
  // dispatches notifications a tick later) and then drops it: so 2 of 3 are
  // enough, in order.
  rec('progress', prog.length >= 2 && prog.every((v, i) => v === i + 1), `${prog.length} of 3 notifications [${prog}]; ${text(r)}`);
});

await feature('sampling', async () => {
  need('trigger-sampling-request');
  const r = await call('trigger-sampling-request', { prompt: 'hello', maxTokens: 10 });
  rec('sampling', seen.sampling > 0 && JSON.stringify(r).includes('relay-matrix sampled answer'), `handler calls ${seen.sampling}; ${text(r).slice(0, 120)}`);
});

await feature('elicitation_form', async () => {
  need('trigger-elicitation-request');
  const r = await call('trigger-elicitation-request');
  rec('elicitation_form', seen.elicitForm > 0 && !r.isError && /relay/.test(text(r)), `handler calls ${seen.elicitForm}; ${text(r).slice(0, 120)}`);
});

await feature('elicitation_url', async () => {
  need('trigger-url-elicitation');
  const r = await call('trigger-url-elicitation', { url: 'https://example.com/relay-matrix' });
  rec('elicitation_url', seen.elicitUrl > 0 && !r.isError && /example\.com\/relay-matrix/.test(text(r)), `handler calls ${seen.elicitUrl}; ${text(r).slice(0, 120)}`);
});

await feature('roots', async () => {
  need('get-roots-list');
  const r = await call('get-roots-list');
  rec('roots', seen.roots > 0 && /relay-matrix-root/.test(text(r)), `handler calls ${seen.roots}; ${text(r).slice(0, 120)}`);
});

await feature('logging', async () => {
  // At "warning", debug, info and notice messages must not arrive.
  await bounded(client.setLoggingLevel('warning'), RPC, 'logging/setLevel');
  const before = seen.logs.length;
  await call('toggle-simulated-logging');
  // server-everything sends a message of a random level at once and every
  // 5 s, dropping those below the level: 3 in 8 are, so the wait must cover
  // enough of them (12 messages: (3/8)^12, about 1 in 130,000, find none).
  const got = await until(() => seen.logs.length > before, Math.max(WAIT, 60_000));
  await call('toggle-simulated-logging').catch(() => {});
  const severe = ['warning', 'error', 'critical', 'alert', 'emergency'];
  const msgs = seen.logs.slice(before);
  const below = msgs.filter((m) => !severe.includes(m.level));
  rec('logging', got && below.length === 0,
    got ? `${msgs.length} notifications/message at levels [${[...new Set(msgs.map((m) => m.level))]}]${below.length ? `; ${below.length} below the level set` : ''}` : `setLevel ok; no notifications/message within ${WAIT} ms`);
});

await feature('resources_subscribe', async () => {
  const res = (await bounded(client.listResources(), RPC, 'resources/list')).resources;
  const uri = res.find((r) => r.uri.startsWith('demo://resource/static/document/'))?.uri ?? res[0]?.uri;
  if (!uri) throw new Error('no resources listed');
  await bounded(client.subscribeResource({ uri }), RPC, 'resources/subscribe');
  await call('toggle-subscriber-updates');
  const got = await until(() => seen.updated.includes(uri), WAIT);
  await call('toggle-subscriber-updates').catch(() => {});
  let unsub = '';
  await bounded(client.unsubscribeResource({ uri }), RPC, 'resources/unsubscribe').catch((e) => { unsub = `; unsubscribe: ${e.message}`; });
  rec('resources_subscribe', got && !unsub, got ? `${seen.updated.filter((u) => u === uri).length} updates for ${uri}${unsub}` : `subscribed to ${uri}; no notifications/resources/updated within ${WAIT} ms${unsub}`);
});

await feature('completion', async () => {
  const r = await bounded(client.complete({ ref: { type: 'ref/prompt', name: P + 'completable-prompt' }, argument: { name: 'department', value: 'E' } }), RPC, 'completion/complete');
  rec('completion', (r.completion?.values ?? []).includes('Engineering'), JSON.stringify(r.completion));
});

// gzip-file-as-resource registers a session resource: the server then sends
// notifications/resources/list_changed.
await feature('list_changed', async () => {
  const before = seen.listChanged.resources;
  // A name of this run's own: server-everything keeps session resources in
  // one registry per process and removes another session's resource of the
  // same name, and the rows of the matrix share one server process.
  const name = `relay-matrix-${process.pid}-${Date.now()}.txt.gz`;
  const r = await call('gzip-file-as-resource', { name, data: 'data:text/plain;base64,cmVsYXktbWF0cml4', outputType: 'resourceLink' });
  const got = await until(() => seen.listChanged.resources > before, WAIT);
  rec('list_changed', got && !r.isError, `resources/list_changed ${seen.listChanged.resources - before} after the call (tools/list_changed ${seen.listChanged.tools} since connect)`);
});

await feature('tasks', async () => {
  need('simulate-research-query');
  const events = [];
  let result;
  let taskId;
  const stream = client.experimental.tasks.callToolStream({ name: P + 'simulate-research-query', arguments: { topic: 'relay matrix' } }, undefined, { timeout: 60_000, task: { ttl: 60_000 } });
  const drain = (async () => {
    for await (const m of stream) {
      events.push(m.type);
      if (m.type === 'taskCreated') taskId = m.task.taskId;
      if (m.type === 'result') result = m.result;
      if (m.type === 'error') throw m.error;
    }
  })();
  await bounded(drain, 60_000, 'task-augmented tools/call');
  let got = '';
  if (taskId) got = (await bounded(client.experimental.tasks.getTask(taskId), RPC, 'tasks/get')).status;
  rec('tasks', !!taskId && !!result && !result.isError && got === 'completed', `task ${taskId ?? 'none'}; events [${[...new Set(events)]}]; tasks/get ${got}; ${text(result).slice(0, 80)}`);
});

// Results that must come through unchanged: the callers compare value.
for (const [name, tool, args] of [
  ['structured_content', 'get-structured-content', { location: 'New York' }],
  ['resource_links', 'get-resource-links', { count: 2 }],
  ['annotations', 'get-annotated-message', { messageType: 'error', includeImage: true }],
]) {
  await feature(name, async () => {
    need(tool);
    const r = await call(tool, args);
    const ok = name === 'structured_content' ? r.structuredContent !== undefined
      : name === 'resource_links' ? (r.content ?? []).some((c) => c.type === 'resource_link')
      : (r.content ?? []).some((c) => c.annotations);
    rec(name, ok && !r.isError, `${(r.content ?? []).map((c) => c.type)}`, r);
  });
}
// The tools' own descriptions (titles, annotations, schemas, execution) too.
if (features.tools?.ok !== undefined) features.tools_json = { ok: features.tools.ok, detail: 'tools/list items without the prefix', value: tools.sort((a, b) => (a.name < b.name ? -1 : 1)) };

await finish(0);
