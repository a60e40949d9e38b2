// Orgata's MCP server driven by the official TypeScript SDK (npm `@modelcontextprotocol/sdk`),
// over Streamable HTTP and stdio, on the revisions that SDK version speaks (see ../README.md).
// Run by ../run.sh, which starts the HTTP server. Prints one `PASS …` or `FAIL …` line per
// check and exits non-zero if any check failed.
//
//   node suite.mjs --url http://127.0.0.1:PORT/mcp --orgata /path/to/orgata --examples DIR

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import * as v1 from '@modelcontextprotocol/sdk/client/index.js';
import * as v1Stdio from '@modelcontextprotocol/sdk/client/stdio.js';
import * as v1Http from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import * as v1Types from '@modelcontextprotocol/sdk/types.js';
import * as v2 from '@modelcontextprotocol/client';
import * as v2Stdio from '@modelcontextprotocol/client/stdio';

const { values: args } = parseArgs({
    options: { url: { type: 'string' }, orgata: { type: 'string' }, examples: { type: 'string' }, only: { type: 'string', default: '' } }
});
const workdir = mkdtempSync(join(tmpdir(), 'orgata-ts-suite-'));
let databases = 0;

// The two generations of the official TypeScript SDK: `@modelcontextprotocol/sdk` 1.x speaks the
// initialize-handshake revisions only; its successor `@modelcontextprotocol/client` 2.x also
// speaks the stateless 2026-07-28.
const SDKS = {
    'sdk@1': {
        revisions: v1Types.SUPPORTED_PROTOCOL_VERSIONS.includes('2026-07-28') ? ['2025-11-25', '2026-07-28'] : ['2025-11-25'],
        Client: v1.Client,
        Http: v1Http.StreamableHTTPClientTransport,
        Stdio: v1Stdio.StdioClientTransport,
        isProtocolError: error => error instanceof v1Types.McpError,
        protocolError: (code, message) => new v1Types.McpError(code, message),
        schemas: {
            'elicitation/create': v1Types.ElicitRequestSchema,
            'sampling/createMessage': v1Types.CreateMessageRequestSchema,
            'roots/list': v1Types.ListRootsRequestSchema,
            'notifications/resources/updated': v1Types.ResourceUpdatedNotificationSchema
        },
        options: () => ({})
    },
    'client@2': {
        revisions: ['2025-11-25', '2026-07-28'],
        Client: v2.Client,
        Http: v2.StreamableHTTPClientTransport,
        Stdio: v2Stdio.StdioClientTransport,
        isProtocolError: error => error instanceof v2.ProtocolError,
        protocolError: (code, message) => new v2.ProtocolError(code, message),
        schemas: null,
        options: (revision, manual) => ({
            versionNegotiation: { mode: revision === '2026-07-28' ? { pin: '2026-07-28' } : 'legacy' },
            ...(manual ? { inputRequired: { autoFulfill: false } } : {})
        })
    }
};

class Failure extends Error {}
function check(condition, message) {
    if (!condition) throw new Failure(message);
}

// One client. Over stdio each client gets its own `orgata mcp` process and database.
async function connect(target, { elicit, sample, roots, onUpdate, manual } = {}) {
    const sdk = SDKS[target.sdk];
    const capabilities = {};
    if (elicit) capabilities.elicitation = { form: {} };
    if (sample) capabilities.sampling = {};
    if (roots) capabilities.roots = { listChanged: true };
    const client = new sdk.Client({ name: 'orgata-ts-suite', version: '1.0.0' }, { capabilities, ...sdk.options(target.revision, manual) });
    const handle = (method, handler) => client.setRequestHandler(sdk.schemas ? sdk.schemas[method] : method, handler);
    if (elicit) handle('elicitation/create', elicit);
    if (sample) handle('sampling/createMessage', sample);
    if (roots) handle('roots/list', roots);
    if (onUpdate) {
        const method = 'notifications/resources/updated';
        client.setNotificationHandler(sdk.schemas ? sdk.schemas[method] : method, onUpdate);
    }
    let transport;
    if (target.transport === 'http') {
        transport = new sdk.Http(new URL(args.url));
    } else {
        databases += 1;
        const database = `sqlite://${workdir}/stdio-${databases}.db?mode=rwc`;
        transport = new sdk.Stdio({
            command: args.orgata,
            args: ['mcp', '--database-url', database, '--examples-dir', args.examples],
            stderr: 'ignore'
        });
    }
    await client.connect(transport);
    const close = async () => {
        // A clean shutdown ends the session; a failure to do so is a failed check.
        if (target.transport === 'http' && target.revision === '2025-11-25') await transport.terminateSession();
        await client.close();
    };
    return { client, transport, close };
}

async function withClient(target, options, body) {
    const connection = await connect(target, options);
    try {
        await body(connection.client, connection);
    } finally {
        await connection.close();
    }
}

function structured(result) {
    if (result.structuredContent !== undefined) return result.structuredContent;
    const text = result.content.find(block => block.type === 'text')?.text ?? 'null';
    return JSON.parse(text);
}

async function ok(client, name, args) {
    const result = await client.callTool({ name, arguments: args });
    check(!result.isError, `${name} ${JSON.stringify(args)} failed: ${JSON.stringify(result.content)}`);
    return structured(result);
}

async function startPbj(client, kind = 'classic') {
    const started = await ok(client, 'execute_playbook', {
        runtimeId: 'kitchen-v1',
        playbookName: 'pbj-sandwich',
        input: { sandwichType: kind }
    });
    return started.executionId;
}

async function waitFor(description, probe) {
    for (let i = 0; i < 500; i++) {
        const found = await probe();
        if (found) return found;
        await new Promise(resolve => setTimeout(resolve, 20));
    }
    throw new Failure(`timed out waiting for ${description}`);
}

const pending = (client, execution) =>
    waitFor(`an intervention of ${execution}`, async () => (await ok(client, 'get_pending_interventions', { executionId: execution })).items[0]);

const status = (client, execution, wanted) =>
    waitFor(`${execution} to become ${wanted}`, async () => {
        const found = await ok(client, 'get_execution', { executionId: execution });
        return found.status === wanted ? found : undefined;
    });

async function rejects(promise, description) {
    try {
        await promise;
    } catch (error) {
        return error;
    }
    throw new Failure(`${description} succeeded`);
}

// --- the checks ---

const checks = {
    async negotiates(target) {
        await withClient(target, {}, async (client, { transport }) => {
            const capabilities = client.getServerCapabilities();
            check(capabilities.tools && capabilities.resources && capabilities.prompts, JSON.stringify(capabilities));
            const negotiated = client.getNegotiatedProtocolVersion ? client.getNegotiatedProtocolVersion() : transport.protocolVersion;
            if (negotiated !== undefined || target.transport === 'http') check(negotiated === target.revision, `negotiated ${negotiated}`);
        });
    },

    async tools(target) {
        await withClient(target, {}, async client => {
            const listed = Object.fromEntries((await client.listTools()).tools.map(tool => [tool.name, tool]));
            for (const name of ['execute_playbook', 'intervene_execution', 'pause_execution', 'resume_execution',
                'get_pending_interventions', 'list_runtimes', 'get_execution']) {
                check(listed[name], `${name} is not listed`);
            }
            check(listed.execute_playbook.inputSchema.properties.playbookName, 'inputSchema');
            check(listed.execute_playbook.outputSchema, 'outputSchema');
            const execution = await startPbj(client);
            const intervention = await pending(client, execution);
            check(intervention.kind === 'TASK', `kind ${intervention.kind}`);
            await ok(client, 'pause_execution', { executionId: execution });
            await ok(client, 'resume_execution', { executionId: execution });
            await ok(client, 'intervene_execution', { executionId: execution, interventionId: intervention.id, response: { jelly_flavor: 'grape' } });
            const done = await status(client, execution, 'COMPLETED');
            check(JSON.stringify(done.output) === JSON.stringify({ name: 'PB&J', flavor: 'grape' }), `output ${JSON.stringify(done.output)}`);
        });
    },

    async argument_errors(target) {
        await withClient(target, {}, async client => {
            const missing = await client.callTool({ name: 'execute_playbook', arguments: { runtimeId: 'kitchen-v1' } });
            check(missing.isError === true, 'a missing argument is a tool error');
            const content = structured(missing);
            check(content.code === 'BAD_INPUT' && content.errors[0].message.includes('playbookName'), JSON.stringify(content));
            const invalid = await client.callTool({ name: 'execute_playbook', arguments: { runtimeId: 'kitchen-v1', playbookName: 'pbj-sandwich', input: { sandwichType: 'tuna' } } });
            check(structured(invalid).errors[0].pointer === '/sandwichType', JSON.stringify(structured(invalid)));
            const unknown = await client.callTool({ name: 'get_execution', arguments: { executionId: '0190a5d2-0000-7000-8000-000000000000' } });
            check(structured(unknown).code === 'NOT_FOUND', JSON.stringify(structured(unknown)));
            try {
                const result = await client.callTool({ name: 'drop_tables', arguments: {} });
                check(result.isError === true, 'an unknown tool is refused');
            } catch (error) {
                check(SDKS[target.sdk].isProtocolError(error), `unexpected ${error}`);
            }
        });
    },

    async resources(target) {
        await withClient(target, {}, async client => {
            const first = await startPbj(client, 'deluxe');
            await pending(client, first);
            for (let i = 0; i < 45; i++) await startPbj(client);
            const templates = (await client.listResourceTemplates()).resourceTemplates;
            check(templates.length === 5, `${templates.length} templates`);
            check(templates.some(template => template.uriTemplate === 'orgata://execution/{execution-id}'), 'template');
            const uris = [];
            let cursor;
            let pages = 0;
            do {
                const page = await client.listResources(cursor === undefined ? {} : { cursor });
                pages += 1;
                uris.push(...page.resources.map(resource => resource.uri));
                cursor = page.nextCursor;
            } while (cursor !== undefined);
            // A page holds 50: client@2 walks the pages itself when called without a cursor.
            check(pages >= 2 || (target.sdk === 'client@2' && uris.length > 50), `${pages} page(s) for ${uris.length} resources`);
            check(new Set(uris).size === uris.length, 'a resource is listed twice');
            for (const expected of ['orgata://runtime/kitchen-v1', 'orgata://playbook/kitchen-v1/pbj-sandwich', 'orgata://role/kitchen-v1/cook',
                'orgata://operation/kitchen-v1/gather-ingredients', `orgata://execution/${first}`]) {
                check(uris.includes(expected), `${expected} is not listed`);
            }
            const foreign = await rejects(client.listResources({ cursor: 'not-a-cursor' }), 'a foreign cursor');
            check(foreign.code === -32602, `code ${foreign.code}`);
            for (const [uri, key, value] of [['orgata://runtime/kitchen-v1', 'id', 'kitchen-v1'],
                ['orgata://playbook/kitchen-v1/pbj-sandwich', 'name', 'pbj-sandwich'], [`orgata://execution/${first}`, 'status', 'WAITING']]) {
                const read = await client.readResource({ uri });
                check(JSON.parse(read.contents[0].text)[key] === value, `${uri}: ${read.contents[0].text.slice(0, 200)}`);
            }
            await rejects(client.readResource({ uri: 'orgata://runtime/nope-v9' }), 'reading an unknown resource');
        });
    },

    async subscribe(target) {
        const updates = [];
        let wake = () => {};
        const onUpdate = notification => {
            updates.push(notification.params.uri);
            wake();
        };
        await withClient(target, { onUpdate }, async client => {
            const execution = await startPbj(client);
            const intervention = await pending(client, execution);
            const uri = `orgata://execution/${execution}`;
            const updated = new Promise(resolve => (wake = resolve));
            const timeout = new Promise((_, reject) => setTimeout(() => reject(new Failure('no update in 10 s')), 10000));
            const answer = { executionId: execution, interventionId: intervention.id, response: { jelly_flavor: 'grape' } };
            if (target.revision === '2026-07-28') {
                const subscription = await client.listen({ resourceSubscriptions: [uri] });
                check((subscription.honoredFilter.resourceSubscriptions ?? []).includes(uri), JSON.stringify(subscription.honoredFilter));
                await ok(client, 'intervene_execution', answer);
                await Promise.race([updated, timeout]);
                check(updates[0] === uri, `updated ${updates[0]}`);
                await subscription.close();
                return;
            }
            await client.subscribeResource({ uri });
            await ok(client, 'intervene_execution', answer);
            await Promise.race([updated, timeout]);
            check(updates[0] === uri, `updated ${updates[0]}`);
            await client.unsubscribeResource({ uri });
        });
    },

    async prompts(target) {
        await withClient(target, {}, async client => {
            const execution = await startPbj(client);
            await pending(client, execution);
            const names = (await client.listPrompts()).prompts.map(prompt => prompt.name).sort();
            check(JSON.stringify(names) === JSON.stringify(['generate_operation_prompt', 'suggest_process_improvements', 'validate_business_logic']), `prompts ${names}`);
            for (const [name, promptArgs, needle] of [
                ['generate_operation_prompt', { runtimeId: 'kitchen-v1', operation: 'gather-ingredients' }, 'bread_slices'],
                ['validate_business_logic', { runtimeId: 'kitchen-v1', playbook: 'pbj-sandwich' }, 'choose-jelly'],
                ['suggest_process_improvements', { executionId: execution }, 'gather-ingredients']
            ]) {
                const prompt = await client.getPrompt({ name, arguments: promptArgs });
                const text = JSON.stringify(prompt.messages);
                check(text.includes(needle), `${name}: ${text.slice(0, 200)}`);
            }
            await rejects(client.getPrompt({ name: 'validate_business_logic', arguments: { runtimeId: 'kitchen-v1' } }), 'a prompt without its argument');
        });
    },

    async elicitation_answered(target) {
        const elicit = async request => {
            check(JSON.stringify(request.params).includes('jelly_flavor'), 'the form');
            return { action: 'accept', content: { jelly_flavor: 'apricot' } };
        };
        await withClient(target, { elicit }, async client => {
            const execution = await startPbj(client);
            const intervention = await pending(client, execution);
            await ok(client, 'intervene_execution', { executionId: execution, interventionId: intervention.id });
            const done = await status(client, execution, 'COMPLETED');
            check(done.output.flavor === 'apricot', `output ${JSON.stringify(done.output)}`);
        });
    },

    async elicitation_declined(target) {
        await refusedElicitation(target, 'decline');
    },

    async elicitation_cancelled(target) {
        await refusedElicitation(target, 'cancel');
    },

    async sampling(target) {
        const sample = async () => ({
            role: 'assistant',
            model: 'suite-model',
            content: { type: 'text', text: '{"category": "travel", "flagged": false}' }
        });
        await withClient(target, { sample }, async client => {
            const started = await ok(client, 'execute_playbook', {
                runtimeId: 'expenses-v2',
                playbookName: 'approve-expense',
                input: { employee: 'Bo', description: 'Train', amount: 80, currency: 'EUR' }
            });
            const done = await status(client, started.executionId, 'COMPLETED');
            check(JSON.stringify(done.output) === JSON.stringify({ decision: 'paid', category: 'travel' }), `output ${JSON.stringify(done.output)}`);
        });
    },

    async roots(target) {
        const roots = async () => ({ roots: [{ uri: 'file:///home/user/project', name: 'project' }] });
        await withClient(target, { roots }, async client => {
            const execution = await startPbj(client);
            check(execution, 'execute_playbook ran');
            const listed = await ok(client, 'list_runtimes', {});
            check(listed.items.some(runtime => runtime.id === 'kitchen-v1'), JSON.stringify(listed));
        });
    },

    async roots_refused(target) {
        const roots = async () => {
            throw SDKS[target.sdk].protocolError(-32603, 'the roots are not available');
        };
        await withClient(target, { roots }, async client => {
            const execution = await startPbj(client);
            await pending(client, execution);
        });
    },

    async input_required_retry(target) {
        // 2026-07-28: the server answers with an input-required result; the retry carries the answer.
        await withClient(target, { manual: true, elicit: async () => ({ action: 'accept', content: {} }) }, async client => {
            const execution = await startPbj(client);
            const intervention = await pending(client, execution);
            const params = { name: 'intervene_execution', arguments: { executionId: execution, interventionId: intervention.id } };
            const first = await client.callTool(params, { allowInputRequired: true });
            check(first.resultType === 'input_required' && first.inputRequests, `first answer ${JSON.stringify(first)}`);
            const keys = Object.keys(first.inputRequests);
            check(keys.length === 1 && first.inputRequests[keys[0]].method === 'elicitation/create', JSON.stringify(first.inputRequests));
            const inputResponses = { [keys[0]]: { action: 'accept', content: { jelly_flavor: 'strawberry' } } };
            const second = await client.callTool({ ...params, inputResponses, requestState: first.requestState }, { allowInputRequired: true });
            check(!second.isError && second.resultType !== 'input_required', `retry ${JSON.stringify(second)}`);
            const done = await status(client, execution, 'COMPLETED');
            check(done.output.flavor === 'strawberry', `output ${JSON.stringify(done.output)}`);
        });
    },

    async clean_shutdown(target) {
        // terminateSession throws on a status other than 2xx or 405.
        await withClient(target, {}, async client => {
            await ok(client, 'list_runtimes', {});
        });
    }
};

async function refusedElicitation(target, action) {
    await withClient(target, { elicit: async () => ({ action }) }, async client => {
        const execution = await startPbj(client);
        const intervention = await pending(client, execution);
        const refused = await client.callTool({ name: 'intervene_execution', arguments: { executionId: execution, interventionId: intervention.id } });
        check(refused.isError === true, `${action}: a tool error`);
        const still = await pending(client, execution);
        check(still.id === intervention.id, 'the intervention is still pending');
    });
}

// Which checks apply to a revision: sampling and roots are server requests of 2025-11-25; the
// input-required round trip is how 2026-07-28 asks instead.
const ONLY = { sampling: '2025-11-25', roots: '2025-11-25', roots_refused: '2025-11-25', input_required_retry: '2026-07-28' };

let failed = 0;
for (const sdk of Object.keys(SDKS)) {
    for (const transport of ['http', 'stdio']) {
        for (const revision of ['2025-11-25', '2026-07-28']) {
            if (!SDKS[sdk].revisions.includes(revision)) {
                console.log(`SKIP typescript-${sdk}/${transport}/${revision}: this SDK version does not speak ${revision}`);
                continue;
            }
            for (const [name, run] of Object.entries(checks)) {
                if (!name.includes(args.only) || (ONLY[name] && ONLY[name] !== revision)) continue;
                const label = `typescript-${sdk}/${transport}/${revision}/${name}`;
                try {
                    await Promise.race([run({ sdk, transport, revision }), new Promise((_, reject) => setTimeout(() => reject(new Failure('took over 120 s')), 120000).unref())]);
                    console.log(`PASS ${label}`);
                } catch (error) {
                    failed += 1;
                    console.log(`FAIL ${label}: ${error instanceof Failure ? error.message : error?.stack ?? error}`);
                }
            }
        }
    }
}
rmSync(workdir, { recursive: true, force: true });
process.exit(failed ? 1 : 0);
