#!/usr/bin/env python3
"""Regenerates the seed corpus in fuzz/seeds/ from the packages in examples/.

seeds/package/  every example file as it is, each also as JSON, and the kitchen directory
                merged into one document the way the loader merges it
seeds/jq/       every jq program (`program`, `when`, `input`, `output`) and prompt template
seeds/schema/   every input and output schema, followed by a matching instance when the
                example has one (`simulated_output`), else alone; and the package format's
                own schema (schema/package.schema.json) followed by each example

and, for each target, the inputs that once crashed or hung it (see REGRESSIONS).

Needs PyYAML. Seeds are named by the SHA-1 of their content, like libFuzzer's corpus files, so
running this again only adds what changed.
"""

import hashlib
import json
import pathlib
import shutil

import yaml

FUZZ = pathlib.Path(__file__).resolve().parent
EXAMPLES = FUZZ.parent / "examples"
SEEDS = FUZZ / "seeds"
PROGRAM_FIELDS = ("program", "when", "input", "output")


def write(target, text):
    data = text.encode()
    folder = SEEDS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)


# Inputs that overflowed the stack or took minutes before the fixes they are named after.
REGRESSIONS = {
    "jq": [
        # jaq recursed once per level on a 2 MiB stack: Program::compile now runs on a large one.
        "-" * 2000 + "1",
        "(" * 1000 + "1" + ")" * 1000,
        "[" * 3000,
        "1" + " + 1" * 1500,
        # Every placeholder is compiled: Template::MAX_PLACEHOLDERS.
        "{{ . }}" * 101,
    ],
    "package": [
        # libyaml is quadratic in flow nesting: load.rs refuses more than 128 levels first.
        "package: p\nversion: 1.0.0\nx: " + "{a: " * 300,
        "[" * 300 + "]" * 300,
        "package: p\nversion: 1.0.0\nplaybooks:\n  - name: a\n    steps:\n      - name: b\n"
        "        kind: transform\n        program: '" + "-" * 2000 + "1'\n",
    ],
    "schema": [
        '{"not":' * 120 + "{}" + "}" * 120,
        '{"items":' * 120 + "{}" + "}" * 120 + "\n" + "[" * 120 + "]" * 120,
    ],
}


def merged_directory(directory):
    document = yaml.safe_load((directory / "package.yaml").read_text())
    for section in ("roles", "operations", "playbooks"):
        for path in sorted((directory / section).glob("*.y*ml")):
            item = yaml.safe_load(path.read_text())
            document.setdefault(section, []).extend(item if isinstance(item, list) else [item])
    return document


def walk(value):
    """Every mapping inside `value`, outermost first."""
    if isinstance(value, dict):
        yield value
        for child in value.values():
            yield from walk(child)
    elif isinstance(value, list):
        for child in value:
            yield from walk(child)


def main():
    if SEEDS.exists():
        shutil.rmtree(SEEDS)
    documents = []
    for path in sorted(EXAMPLES.rglob("*.y*ml")):
        text = path.read_text()
        document = yaml.safe_load(text)
        write("package", text)
        write("package", json.dumps(document, indent=2))
        documents.append(document)
    for directory in sorted(path.parent for path in EXAMPLES.rglob("package.yaml") if path.parent != EXAMPLES):
        document = merged_directory(directory)
        write("package", yaml.safe_dump(document, sort_keys=False))
        write("package", json.dumps(document))
        documents.append(document)
    for document in documents:
        for mapping in walk(document):
            for field in PROGRAM_FIELDS:
                if isinstance(mapping.get(field), str):
                    write("jq", mapping[field])
            if isinstance(mapping.get("prompt"), str):
                write("jq", mapping["prompt"])
            for field in ("input_schema", "output_schema"):
                form = mapping.get(field)
                if isinstance(form, (dict, bool)):
                    write("schema", json.dumps(form))
                    if field == "output_schema" and "simulated_output" in mapping:
                        write("schema", json.dumps(form) + "\n" + json.dumps(mapping["simulated_output"]))
    package_schema = json.loads((FUZZ.parent / "schema" / "package.schema.json").read_text())
    write("schema", json.dumps(package_schema))
    for document in documents:
        if "package" in document:
            write("schema", json.dumps(package_schema) + "\n" + json.dumps(document))
    for target, inputs in REGRESSIONS.items():
        for text in inputs:
            write(target, text)
    for target in ("package", "jq", "schema"):
        print(f"{target}: {len(list((SEEDS / target).iterdir()))} seeds")


if __name__ == "__main__":
    main()
