// A frontend in miniature, built only on the generated contract (../../types.ts) and standard
// clients: fetch for queries and mutations, graphql-ws for the live history. It lists the
// kitchen's playbooks, describes the pbj-sandwich form from its FieldDescriptors, starts a
// sandwich, waits on the subscription for the cook's intervention, answers it and prints the
// output.
//
//   ORGATA_URL=http://127.0.0.1:8080 [ORGATA_TOKEN=orgata_…] npm start

import { print } from "graphql";
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

import {
  GetExecutionDocument,
  GetPlaybookSchemaDocument,
  ListPlaybooksDocument,
  RespondToInterventionDocument,
  StartExecutionDocument,
  ExecutionEventsDocument,
  type ExecutionEventsSubscription,
  type GetPlaybookSchemaQuery,
} from "../../types.js";

const base = process.env.ORGATA_URL ?? "http://127.0.0.1:8080";
const token = process.env.ORGATA_TOKEN;
const headers: Record<string, string> = { "content-type": "application/json" };
if (token) headers.authorization = `Bearer ${token}`;

/** Runs one typed document over HTTP; the result and variables are checked by the compiler. */
async function request<Result, Variables>(document: TypedDocumentNode<Result, Variables>, variables: Variables): Promise<Result> {
  const response = await fetch(`${base}/graphql`, {
    method: "POST",
    headers,
    body: JSON.stringify({ query: print(document), variables }),
  });
  const body = (await response.json()) as { data?: Result; errors?: { message: string; extensions?: { code?: string } }[] };
  if (body.errors?.length) {
    const [first] = body.errors;
    throw new Error(`${first?.extensions?.code ?? "ERROR"}: ${first?.message}`);
  }
  if (!body.data) throw new Error(`no data (HTTP ${response.status})`);
  return body.data;
}

type Field = NonNullable<GetPlaybookSchemaQuery["playbook"]>["fields"][number];

/** A text rendering of a form, as a frontend would lay it out. */
function describe(fields: Field[]): string {
  return fields
    .map((field) => {
      const choices = field.enum ? ` one of ${field.enum.map((value) => JSON.stringify(value)).join(", ")}` : "";
      const required = field.required ? " (required)" : "";
      return `  - ${field.label} [${field.widget}]: ${field.type}${choices}${required}`;
    })
    .join("\n");
}

async function main(): Promise<void> {
  const runtime = "kitchen-v1";
  const { runtime: kitchen } = await request(ListPlaybooksDocument, { id: runtime });
  console.log(`playbooks of ${runtime}: ${kitchen.playbooks.map((playbook) => playbook.name).join(", ")}`);

  const { playbook } = await request(GetPlaybookSchemaDocument, { id: runtime, name: "pbj-sandwich" });
  console.log(`form of ${playbook.name}:\n${describe(playbook.fields)}`);

  const { executePlaybook: started } = await request(StartExecutionDocument, {
    id: runtime,
    playbookName: "pbj-sandwich",
    input: { sandwichType: "classic" },
  });
  console.log(`started ${started.executionId} (${started.status})`);

  const socket = createClient({
    url: `${base.replace(/^http/, "ws")}/graphql/ws`,
    webSocketImpl: WebSocket,
    connectionParams: token ? { Authorization: `Bearer ${token}` } : {},
  });
  type Event = ExecutionEventsSubscription["executionEvents"];
  const events = socket.iterate<ExecutionEventsSubscription>({
    query: print(ExecutionEventsDocument),
    variables: { id: started.executionId, afterSeq: 0 },
  });
  const next = async (): Promise<Event> => {
    const result = await events.next();
    if (result.done || !result.value.data) throw new Error(`the subscription ended: ${JSON.stringify(result.value)}`);
    return result.value.data.executionEvents;
  };

  let event = await next();
  while (event.type !== "INTERVENTION_REQUESTED") event = await next();
  const payload = event.payload as { interventionId: string; prompt?: string; role?: string };
  console.log(`the ${payload.role} is asked: ${payload.prompt}`);

  await request(RespondToInterventionDocument, {
    id: started.executionId,
    interventionId: payload.interventionId,
    response: { jelly_flavor: "grape" },
    notes: "answered by the example client",
  });
  while (event.type !== "EXECUTION_COMPLETED" && event.type !== "EXECUTION_FAILED") event = await next();
  await events.return?.();
  await socket.dispose();

  const { execution } = await request(GetExecutionDocument, { id: started.executionId });
  console.log(`${execution.status}: ${JSON.stringify(execution.output)}`);
  if (execution.status !== "COMPLETED") process.exit(1);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
