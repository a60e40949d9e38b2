"""Orgata's MCP server driven by the official Python SDK (PyPI `mcp`), on every revision the SDK
speaks (2025-11-25 with sessions, 2026-07-28 stateless) over Streamable HTTP and stdio.

Run by ../run.sh, which starts the HTTP server. Prints one `PASS …` or `FAIL …` line per
check and exits non-zero if any check failed.

    python suite.py --url http://127.0.0.1:PORT/mcp --orgata /path/to/orgata --examples DIR
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import traceback
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters, types
from mcp.client.context import ClientRequestContext
from mcp.shared.exceptions import MCPError

# Sampling, roots and resources/subscribe are deprecated from 2026-07-28 on; this suite uses them
# on 2025-11-25 deliberately.
warnings.simplefilter("ignore")

REVISIONS = ("2025-11-25", "2026-07-28")
SIM_PACKAGE = (
    "package: desk\nversion: 1.0.0\n"
    "playbooks: [{name: p, steps: [{name: s, kind: transform, program: '{ok: true}'}]}]\n"
)


class Failure(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Failure(message)


class Target:
    """Where and how to connect: a URL, or `orgata mcp` over stdio with its own database."""

    def __init__(self, transport: str, revision: str, args: argparse.Namespace, workdir: Path) -> None:
        self.transport = transport
        self.revision = revision
        self.args = args
        self.workdir = workdir
        self.databases = 0

    def client(self, **callbacks: Any) -> Client:
        mode = "legacy" if self.revision == "2025-11-25" else "auto"
        if self.transport == "http":
            server: Any = self.args.url
        else:
            # One process and database per client: stdio serves one client.
            self.databases += 1
            database = f"sqlite://{self.workdir}/stdio-{self.revision}-{self.databases}.db?mode=rwc"
            server = StdioServerParameters(
                command=self.args.orgata,
                args=["mcp", "--database-url", database, "--examples-dir", self.args.examples],
            )
        return Client(server, mode=mode, **callbacks)


def structured(result: types.CallToolResult) -> dict[str, Any]:
    if result.structured_content is not None:
        return result.structured_content
    text = next((block.text for block in result.content if isinstance(block, types.TextContent)), "null")
    return json.loads(text)


async def ok(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    check(not result.is_error, f"{tool} {arguments} failed: {result.content}")
    return structured(result)


async def start_pbj(client: Client, kind: str = "classic") -> str:
    started = await ok(
        client,
        "execute_playbook",
        {"runtimeId": "kitchen-v1", "playbookName": "pbj-sandwich", "input": {"sandwichType": kind}},
    )
    return started["executionId"]


async def wait_for(description: str, probe: Callable[[], Awaitable[Any]]) -> Any:
    for _ in range(500):
        found = await probe()
        if found:
            return found
        await asyncio.sleep(0.02)
    raise Failure(f"timed out waiting for {description}")


async def pending(client: Client, execution: str) -> dict[str, Any]:
    async def probe() -> Any:
        items = (await ok(client, "get_pending_interventions", {"executionId": execution}))["items"]
        return items[0] if items else None

    return await wait_for(f"an intervention of {execution}", probe)


async def status(client: Client, execution: str, wanted: str) -> dict[str, Any]:
    async def probe() -> Any:
        found = await ok(client, "get_execution", {"executionId": execution})
        return found if found["status"] == wanted else None

    return await wait_for(f"{execution} to become {wanted}", probe)


# --- the checks; each takes the target and returns nothing or raises ---


async def negotiates(target: Target) -> None:
    async with target.client() as client:
        check(client.protocol_version == target.revision, f"negotiated {client.protocol_version}")
        capabilities = client.server_capabilities
        check(capabilities.tools is not None, "tools capability")
        check(capabilities.resources is not None, "resources capability")
        check(capabilities.prompts is not None, "prompts capability")


async def tools(target: Target) -> None:
    async with target.client() as client:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
        for name in ("execute_playbook", "intervene_execution", "pause_execution", "resume_execution",
                     "get_pending_interventions", "list_runtimes", "get_execution"):
            check(name in listed, f"{name} is not listed")
        check("playbookName" in listed["execute_playbook"].input_schema["properties"], "inputSchema")
        check(listed["execute_playbook"].output_schema is not None, "outputSchema")
        execution = await start_pbj(client)
        intervention = await pending(client, execution)
        check(intervention["kind"] == "TASK", f"kind {intervention['kind']}")
        await ok(client, "pause_execution", {"executionId": execution})
        await ok(client, "resume_execution", {"executionId": execution})
        await ok(client, "intervene_execution", {"executionId": execution, "interventionId": intervention["id"],
                                                 "response": {"jelly_flavor": "grape"}})
        done = await status(client, execution, "COMPLETED")
        check(done["output"] == {"name": "PB&J", "flavor": "grape"}, f"output {done['output']}")


async def argument_errors(target: Target) -> None:
    async with target.client() as client:
        missing = await client.call_tool("execute_playbook", {"runtimeId": "kitchen-v1"})
        check(missing.is_error is True, "a missing argument is a tool error")
        content = structured(missing)
        check(content["code"] == "BAD_INPUT", f"code {content}")
        check("playbookName" in content["errors"][0]["message"], f"errors {content}")
        invalid = await client.call_tool("execute_playbook", {"runtimeId": "kitchen-v1", "playbookName": "pbj-sandwich",
                                                              "input": {"sandwichType": "tuna"}})
        check(structured(invalid)["errors"][0]["pointer"] == "/sandwichType", f"{structured(invalid)}")
        unknown = await client.call_tool("get_execution", {"executionId": "0190a5d2-0000-7000-8000-000000000000"})
        check(structured(unknown)["code"] == "NOT_FOUND", f"{structured(unknown)}")
        try:
            result = await client.call_tool("drop_tables", {})
        except MCPError:
            pass
        else:
            check(result.is_error is True, "an unknown tool is refused")


async def resources(target: Target) -> None:
    async with target.client() as client:
        # Enough executions that resources/list takes more than one page.
        first = await start_pbj(client, "deluxe")
        await pending(client, first)
        for _ in range(45):
            await start_pbj(client)
        templates = (await client.list_resource_templates()).resource_templates
        check(len(templates) == 5, f"{len(templates)} templates")
        check(any(template.uri_template == "orgata://execution/{execution-id}" for template in templates), "template")
        uris: list[str] = []
        cursor = None
        pages = 0
        while True:
            page = await client.list_resources(cursor=cursor)
            pages += 1
            uris.extend(str(resource.uri) for resource in page.resources)
            cursor = page.next_cursor
            if cursor is None:
                break
        check(pages >= 2, f"{pages} page(s) for {len(uris)} resources")
        check(len(uris) == len(set(uris)), "a resource is listed twice")
        for expected in ("orgata://runtime/kitchen-v1", "orgata://playbook/kitchen-v1/pbj-sandwich",
                         "orgata://role/kitchen-v1/cook", "orgata://operation/kitchen-v1/gather-ingredients",
                         f"orgata://execution/{first}"):
            check(expected in uris, f"{expected} is not listed")
        try:
            await client.list_resources(cursor="not-a-cursor")
            raise Failure("a foreign cursor is accepted")
        except MCPError as error:
            check(error.code == -32602, f"code {error.code}")
        for uri, key, value in (("orgata://runtime/kitchen-v1", "id", "kitchen-v1"),
                                ("orgata://playbook/kitchen-v1/pbj-sandwich", "name", "pbj-sandwich"),
                                (f"orgata://execution/{first}", "status", "WAITING")):
            read = await client.read_resource(uri)
            contents = read.contents[0]
            check(isinstance(contents, types.TextResourceContents), "text contents")
            check(json.loads(contents.text)[key] == value, f"{uri}: {contents.text[:200]}")
        try:
            await client.read_resource("orgata://runtime/nope-v9")
            raise Failure("an unknown resource reads")
        except MCPError:
            pass


async def subscribe(target: Target) -> None:
    updates: asyncio.Queue[str] = asyncio.Queue()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updates.put_nowait(str(message.params.uri))

    async with target.client(message_handler=on_message) as client:
        execution = await start_pbj(client)
        intervention = await pending(client, execution)
        uri = f"orgata://execution/{execution}"
        answer = {"executionId": execution, "interventionId": intervention["id"], "response": {"jelly_flavor": "grape"}}
        if target.revision == "2025-11-25":
            await client.subscribe_resource(uri)
            await ok(client, "intervene_execution", answer)
            updated = await asyncio.wait_for(updates.get(), 10)
            check(updated == uri, f"updated {updated}")
            await client.unsubscribe_resource(uri)
        else:
            async with client.listen(resource_subscriptions=[uri]) as subscription:
                check(uri in (subscription.honored.resource_subscriptions or []), f"honored {subscription.honored}")
                await ok(client, "intervene_execution", answer)
                event = await asyncio.wait_for(subscription.__anext__(), 10)
                check(getattr(event, "uri", None) == uri, f"event {event}")


async def prompts(target: Target) -> None:
    async with target.client() as client:
        execution = await start_pbj(client)
        await pending(client, execution)
        names = {prompt.name for prompt in (await client.list_prompts()).prompts}
        check(names == {"generate_operation_prompt", "validate_business_logic", "suggest_process_improvements"},
              f"prompts {names}")
        for name, arguments, needle in (
            ("generate_operation_prompt", {"runtimeId": "kitchen-v1", "operation": "gather-ingredients"},
             "bread_slices"),
            ("validate_business_logic", {"runtimeId": "kitchen-v1", "playbook": "pbj-sandwich"}, "choose-jelly"),
            ("suggest_process_improvements", {"executionId": execution}, "gather-ingredients"),
        ):
            prompt = await client.get_prompt(name, arguments)
            text = json.dumps([message.model_dump(mode="json") for message in prompt.messages])
            check(needle in text, f"{name}: {text[:200]}")
        try:
            await client.get_prompt("validate_business_logic", {"runtimeId": "kitchen-v1"})
            raise Failure("a prompt without its required argument works")
        except MCPError:
            pass


def elicitation(action: str, content: dict[str, Any] | None = None) -> Any:
    async def answer(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        check("jelly_flavor" in json.dumps(params.model_dump(mode="json")), f"the form: {params}")
        return types.ElicitResult(action=action, content=content)

    return answer


async def elicit_answered(target: Target) -> None:
    async with target.client(elicitation_callback=elicitation("accept", {"jelly_flavor": "apricot"})) as client:
        execution = await start_pbj(client)
        intervention = await pending(client, execution)
        # Without a response the person at the client is asked; on 2026-07-28 this is the
        # input-required round trip, which the SDK fulfils and retries.
        await ok(client, "intervene_execution", {"executionId": execution, "interventionId": intervention["id"]})
        done = await status(client, execution, "COMPLETED")
        check(done["output"]["flavor"] == "apricot", f"output {done['output']}")


async def elicit_refused(target: Target, action: str) -> None:
    async with target.client(elicitation_callback=elicitation(action)) as client:
        execution = await start_pbj(client)
        intervention = await pending(client, execution)
        refused = await client.call_tool("intervene_execution",
                                         {"executionId": execution, "interventionId": intervention["id"]})
        check(refused.is_error is True, f"{action}: a tool error")
        still = await pending(client, execution)
        check(still["id"] == intervention["id"], "the intervention is still pending")


async def elicit_declined(target: Target) -> None:
    await elicit_refused(target, "decline")


async def elicit_cancelled(target: Target) -> None:
    await elicit_refused(target, "cancel")


async def input_required_by_hand(target: Target) -> None:
    """2026-07-28: the server answers with an input-required result; the retry carries the answer."""
    async with target.client() as client:
        execution = await start_pbj(client)
        intervention = await pending(client, execution)
        arguments = {"executionId": execution, "interventionId": intervention["id"]}
        first = await client.session.call_tool("intervene_execution", arguments, allow_input_required=True)
        check(isinstance(first, types.InputRequiredResult), f"first answer {type(first).__name__}")
        check(first.input_requests and len(first.input_requests) == 1, f"requests {first.input_requests}")
        key = next(iter(first.input_requests))
        check(first.input_requests[key].method == "elicitation/create", f"request {first.input_requests[key]}")
        answer = types.ElicitResult(action="accept", content={"jelly_flavor": "strawberry"})
        second = await client.session.call_tool("intervene_execution", arguments, allow_input_required=True,
                                                input_responses={key: answer}, request_state=first.request_state)
        check(isinstance(second, types.CallToolResult) and not second.is_error, f"retry {second}")
        done = await status(client, execution, "COMPLETED")
        check(done["output"]["flavor"] == "strawberry", f"output {done['output']}")


async def sampling(target: Target) -> None:
    async def model(context: ClientRequestContext, params: types.CreateMessageRequestParams) -> Any:
        return types.CreateMessageResult(role="assistant", model="suite-model", content=types.TextContent(
            type="text", text='{"category": "travel", "flagged": false}'))

    async with target.client(sampling_callback=model) as client:
        started = await ok(client, "execute_playbook", {
            "runtimeId": "expenses-v2", "playbookName": "approve-expense",
            "input": {"employee": "Bo", "description": "Train", "amount": 80, "currency": "EUR"}})
        done = await status(client, started["executionId"], "COMPLETED")
        check(done["output"] == {"decision": "paid", "category": "travel"}, f"output {done['output']}")


async def roots(target: Target) -> None:
    """A client that declares roots can call tools; file roots name no environment, so the
    session keeps the caller's grants."""

    async def list_roots(context: ClientRequestContext) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root(uri="file:///home/user/project", name="project")])

    async with target.client(list_roots_callback=list_roots) as client:
        execution = await start_pbj(client)
        check(bool(execution), "execute_playbook ran")
        listed = await ok(client, "list_runtimes", {})
        check(any(runtime["id"] == "kitchen-v1" for runtime in listed["items"]), f"runtimes {listed}")


async def roots_refused(target: Target) -> None:
    """A client whose roots cannot be read is treated as having declared none."""

    async def list_roots(context: ClientRequestContext) -> types.ErrorData:
        return types.ErrorData(code=-32603, message="the roots are not available")

    async with target.client(list_roots_callback=list_roots) as client:
        started = await ok(client, "execute_playbook", {"runtimeId": "kitchen-v1", "playbookName": "pbj-sandwich",
                                                        "input": {"sandwichType": "classic"}})
        await pending(client, started["executionId"])


async def roots_unreadable(target: Target) -> None:
    """Issue 20 as reported: a callback that builds a non-file root fails inside the SDK, which
    answers `roots/list` with -32602; the tool call still runs to a result."""

    async def list_roots(context: ClientRequestContext) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root(uri="orgata://env/development")])

    async with target.client(list_roots_callback=list_roots) as client:
        execution = await start_pbj(client)
        intervention = await pending(client, execution)
        await ok(client, "intervene_execution", {"executionId": execution, "interventionId": intervention["id"],
                                                 "response": {"jelly_flavor": "grape"}})
        await status(client, execution, "COMPLETED")


class TerminationLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.failures: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "termination" in record.getMessage().lower():
            self.failures.append(record.getMessage())


async def clean_shutdown(target: Target) -> None:
    """Ending a session is not reported as a failure (DELETE /mcp on 2025-11-25)."""
    handler = TerminationLog()
    logging.getLogger().addHandler(handler)
    try:
        async with target.client() as client:
            await ok(client, "list_runtimes", {})
    finally:
        logging.getLogger().removeHandler(handler)
    check(not handler.failures, f"logged {handler.failures}")


CHECKS: list[tuple[str, Callable[[Target], Awaitable[None]], tuple[str, ...]]] = [
    ("negotiates", negotiates, REVISIONS),
    ("tools", tools, REVISIONS),
    ("argument_errors", argument_errors, REVISIONS),
    ("resources", resources, REVISIONS),
    ("subscribe", subscribe, REVISIONS),
    ("prompts", prompts, REVISIONS),
    ("elicitation_answered", elicit_answered, REVISIONS),
    ("elicitation_declined", elicit_declined, REVISIONS),
    ("elicitation_cancelled", elicit_cancelled, REVISIONS),
    ("input_required_retry", input_required_by_hand, ("2026-07-28",)),
    ("sampling", sampling, ("2025-11-25",)),
    ("roots", roots, ("2025-11-25",)),
    ("roots_refused", roots_refused, ("2025-11-25",)),
    ("roots_unreadable", roots_unreadable, ("2025-11-25",)),
    ("clean_shutdown", clean_shutdown, REVISIONS),
]


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--orgata", required=True)
    parser.add_argument("--examples", required=True)
    parser.add_argument("--only", default="", help="run only checks whose name contains this")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    failed = 0
    with tempfile.TemporaryDirectory() as workdir:
        for transport in ("http", "stdio"):
            for revision in REVISIONS:
                for name, run, revisions in CHECKS:
                    if revision not in revisions or args.only not in name:
                        continue
                    label = f"python/{transport}/{revision}/{name}"
                    try:
                        await asyncio.wait_for(run(Target(transport, revision, args, Path(workdir))), 120)
                        print(f"PASS {label}", flush=True)
                    except BaseException as error:  # noqa: BLE001 - every failure is reported
                        if isinstance(error, KeyboardInterrupt):
                            raise
                        failed += 1
                        while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
                            error = error.exceptions[0]
                        detail = (str(error) if isinstance(error, Failure)
                                  else "".join(traceback.format_exception(error, limit=-3)).strip())
                        print(f"FAIL {label}: {detail}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
