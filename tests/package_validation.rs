//! Package validation through the library API: the shipped examples pass, and every kind of
//! mistake an author can make is reported with the file it is in, the JSON path inside that
//! file, and a message that says what was expected.

use std::fs;
use std::path::Path;

use orgata::jq::{Program, Template};
use orgata::package::load::{Format, load_document};
use orgata::package::{Package, Problem, load_path, validate};
use tempfile::TempDir;

/// Writes `files` (path relative to `root`, contents) under `root`, creating folders as needed.
fn write_files(root: &Path, files: &[(&str, &str)]) {
    for (name, contents) in files {
        let path = root.join(name);
        fs::create_dir_all(path.parent().expect("a file has a parent folder")).expect("create folder");
        fs::write(&path, contents).expect("write package file");
    }
}

/// Loads and validates a package exactly as `orgata package validate` does.
fn check(path: &Path) -> Result<Package, Vec<Problem>> {
    load_path(path).and_then(|loaded| validate(&loaded))
}

/// Validates a package that must be rejected and returns its problems.
fn problems_of(path: &Path) -> Vec<Problem> {
    match check(path) {
        Ok(package) => panic!("{} should be rejected but validated as {package:#?}", path.display()),
        Err(problems) => problems,
    }
}

/// A readable listing of problems for assertion messages.
fn show(problems: &[Problem]) -> String {
    problems.iter().map(|problem| format!("\n  {problem}")).collect()
}

/// Asserts that exactly one problem sits in a file ending with `file` at `path` and that its
/// message mentions `keyword`.
fn assert_reported(problems: &[Problem], file: &str, path: &str, keyword: &str) {
    let here: Vec<&Problem> =
        problems.iter().filter(|problem| problem.file.ends_with(file) && problem.path == path).collect();
    assert_eq!(here.len(), 1, "expected exactly one problem at {file}: {path}; got:{}", show(problems));
    assert!(
        here[0].message.contains(keyword),
        "the problem at {file}: {path} should mention {keyword:?}; got:{}",
        show(problems)
    );
}

fn example(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name)
}

// --- The shipped examples -------------------------------------------------------------------

#[test]
fn kitchen_directory_example_is_valid() {
    let package = check(&example("kitchen")).unwrap_or_else(|problems| panic!("kitchen:{}", show(&problems)));
    // The directory parts were merged in: one role, one operation, one playbook.
    assert_eq!(package.package, "kitchen");
    assert_eq!((package.roles.len(), package.operations.len(), package.playbooks.len()), (1, 1, 1));
}

#[test]
fn onboarding_example_is_valid() {
    let package =
        check(&example("onboarding.yaml")).unwrap_or_else(|problems| panic!("onboarding:{}", show(&problems)));
    assert_eq!(package.package, "onboarding");
}

#[test]
fn inquiries_example_is_valid() {
    let package = check(&example("inquiries.yaml")).unwrap_or_else(|problems| panic!("{}", show(&problems)));
    let steps = &package.playbooks[0].steps;
    assert!(steps.iter().any(|step| step.next.iter().any(|route| route.goto == "qualify")), "it loops");
}

#[test]
fn expenses_example_is_valid() {
    let package = check(&example("expenses.yaml")).unwrap_or_else(|problems| panic!("expenses:{}", show(&problems)));
    assert_eq!(package.package, "expenses");
}

// --- Semantic mistakes ----------------------------------------------------------------------

/// A directory package that passes the JSON Schema but has one planted semantic mistake per
/// entry of `semantic_mistakes_are_all_reported_with_file_and_path`. Mistakes are spread over
/// several files, and some files hold lists, so the test also proves that pointers into the
/// merged document are mapped back to the right file and the right index inside it.
const BROKEN_PACKAGE: &[(&str, &str)] = &[
    ("package.yaml", "package: broken\nversion: 1.0.0\n"),
    ("roles/a.yaml", "name: clerk\n"),
    // A list: the duplicate `clerk` is the second item of this file.
    ("roles/b.yaml", "- name: boss\n- name: clerk\n"),
    (
        "operations/ops.yaml",
        r#"
- name: stamp
  kind: transform
  program: '.'
- name: approve
  kind: human
  role: nobody                       # unknown role, in an operation
  output_schema: {type: object}
"#,
    ),
    (
        "playbooks/bad.yaml",
        r#"
name: bad
steps:
  - name: ask                        # 0: unknown role
    kind: human
    role: ghost
    output_schema: {type: object}
  - name: missing-op                 # 1: unknown operation
    operation: no-such-operation
  - name: bad-program                # 2: jq program does not compile
    kind: transform
    program: 'undefined_fn'
  - name: bad-when                   # 3: `when` does not compile
    kind: transform
    program: '.'
    when: '.steps.x =='
  - name: bad-schema                 # 4: output_schema is not a JSON Schema
    kind: agent
    prompt: 'Say hi'
    output_schema: {type: banana}
  - name: call-nowhere               # 5: unknown playbook
    kind: playbook
    playbook: nowhere
  - name: formless                   # 6: human step without a form
    kind: human
    role: clerk
  - name: ask                        # 7: duplicate step name
    kind: transform
    program: '.'
  - name: simulated                  # 8: simulated output does not fit the output schema
    kind: human
    role: clerk
    output_schema:
      type: object
      properties: {ok: {type: boolean}}
    simulated_output: {ok: "yes"}
  - name: uses-stamp                 # fine: a step that references a known operation
    operation: stamp
  - name: routes                     # 10: `next` to an unknown step, and a condition that does not compile
    kind: transform
    program: '.'
    next:
      - when: '.ok'
        goto: $end
      - when: '.steps.x =='
        goto: ask
      - goto: nowhere
"#,
    ),
    // Two playbooks calling each other: a → b → a.
    (
        "playbooks/cycle.yaml",
        r#"
- name: a
  steps:
    - name: call-b
      kind: playbook
      playbook: b
- name: b
  steps:
    - name: call-a
      kind: playbook
      playbook: a
"#,
    ),
];

#[test]
fn semantic_mistakes_are_all_reported_with_file_and_path() {
    let dir = TempDir::new().expect("temp dir");
    write_files(dir.path(), BROKEN_PACKAGE);
    let problems = problems_of(dir.path());

    // (file suffix, path inside that file, a word the message must contain)
    let expected = [
        ("roles/b.yaml", "/1/name", "duplicate role"),
        ("operations/ops.yaml", "/1/role", "unknown role `nobody`"),
        ("playbooks/bad.yaml", "/steps/0/role", "unknown role `ghost`"),
        ("playbooks/bad.yaml", "/steps/1/operation", "unknown operation `no-such-operation`"),
        ("playbooks/bad.yaml", "/steps/2/program", "does not compile"),
        ("playbooks/bad.yaml", "/steps/3/when", "does not compile"),
        ("playbooks/bad.yaml", "/steps/4/output_schema/type", "not a valid JSON Schema"),
        ("playbooks/bad.yaml", "/steps/5/playbook", "unknown playbook `nowhere`"),
        ("playbooks/bad.yaml", "/steps/6/output_schema", "needs `output_schema`"),
        ("playbooks/bad.yaml", "/steps/7/name", "duplicate step name `ask`"),
        ("playbooks/bad.yaml", "/steps/8/simulated_output/ok", "does not fit the output schema"),
        ("playbooks/bad.yaml", "/steps/10/next/1/when", "does not compile"),
        ("playbooks/bad.yaml", "/steps/10/next/2/goto", "unknown step `nowhere`"),
        // The cycle is reported once, at the step that closes it (b's call back to a).
        ("playbooks/cycle.yaml", "/1/steps/0/playbook", "cycle"),
    ];
    for (file, path, keyword) in expected {
        assert_reported(&problems, file, path, keyword);
    }
    // All at once, and nothing else: one problem per planted mistake.
    assert_eq!(problems.len(), expected.len(), "unexpected extra problems:{}", show(&problems));
}

#[test]
fn jq_errors_name_the_undefined_filter() {
    // The compile error should tell the author which name was not found.
    let dir = TempDir::new().expect("temp dir");
    write_files(dir.path(), BROKEN_PACKAGE);
    let problems = problems_of(dir.path());
    let program = problems.iter().find(|problem| problem.path == "/steps/2/program").expect("program problem");
    assert!(program.message.contains("undefined_fn"), "{program}");
}

#[test]
fn cycle_message_names_the_playbooks_in_order() {
    let dir = TempDir::new().expect("temp dir");
    write_files(dir.path(), BROKEN_PACKAGE);
    let problems = problems_of(dir.path());
    let cycle = problems.iter().find(|problem| problem.message.contains("cycle")).expect("cycle problem");
    assert!(cycle.message.contains("a → b → a"), "{cycle}");
}

// The first definition is named by its file, not by a pointer into the merged document.
#[test]
fn duplicate_across_files_says_where_the_first_one_is() {
    // `clerk` is defined in roles/a.yaml and again in roles/b.yaml. The message should point
    // the author at the first definition in terms they can find: its file.
    let dir = TempDir::new().expect("temp dir");
    write_files(dir.path(), BROKEN_PACKAGE);
    let problems = problems_of(dir.path());
    let duplicate = problems.iter().find(|problem| problem.message.contains("duplicate role")).expect("duplicate");
    assert!(duplicate.message.contains("roles/a.yaml"), "{duplicate}");
}

#[test]
fn single_file_package_reports_paths_in_that_file() {
    // In a one-file package the merged document is the file, so paths are unchanged.
    let dir = TempDir::new().expect("temp dir");
    write_files(
        dir.path(),
        &[(
            "solo.yaml",
            "package: solo\nversion: 0.1.0\nplaybooks:\n  - name: p\n    steps:\n      - name: s\n        operation: ghost\n",
        )],
    );
    let problems = problems_of(&dir.path().join("solo.yaml"));
    assert_reported(&problems, "solo.yaml", "/playbooks/0/steps/0/operation", "unknown operation `ghost`");
    assert_eq!(problems.len(), 1, "{}", show(&problems));
}

// --- Structural mistakes (the JSON Schema check) --------------------------------------------

#[test]
fn structural_mistakes_are_reported_from_the_schema_check() {
    let dir = TempDir::new().expect("temp dir");
    write_files(
        dir.path(),
        &[
            // Not a slug: capitals and a space.
            ("package.yaml", "package: Not A Slug\nversion: 1.0.0\n"),
            // Unknown field on a role.
            ("roles/r.yaml", "name: clerk\ncolour: blue\n"),
            (
                "playbooks/p.yaml",
                r#"
- name: p
  steps:
    - name: wait
      kind: transform
      program: '.'
      timeout_ms: soon               # wrong type: must be an integer
    - name: extra
      kind: transform
      program: '.'
      retries: 3                     # unknown field on a step (flattened struct)
"#,
            ),
        ],
    );
    let problems = problems_of(dir.path());

    assert_reported(&problems, "package.yaml", "/package", "Not A Slug");
    // An unknown field is reported on the object that holds it: the whole role file.
    assert_reported(&problems, "roles/r.yaml", "", "colour");
    assert_reported(&problems, "playbooks/p.yaml", "/0/steps/0/timeout_ms", "integer");
    assert_reported(&problems, "playbooks/p.yaml", "/0/steps/1", "retries");
    assert_eq!(problems.len(), 4, "unexpected extra problems:{}", show(&problems));
}

#[test]
fn structural_and_semantic_mistakes_are_reported_in_one_run() {
    // Fixing what a run lists must not reveal more: the semantic checks run over every part
    // that can still be read, next to the schema errors.
    let dir = TempDir::new().expect("temp dir");
    write_files(
        dir.path(),
        &[
            ("package.yaml", "package: p\nversion: one\n"),
            // A broken role is reported once, where it is, and not as unknown where it is used.
            ("roles/r.yaml", "name: clerk\ncolour: blue\n"),
            (
                "playbooks/p.yaml",
                "name: p\nrole: clerk\nsteps:\n  - name: s\n    operation: ghost\n  - name: t\n    kind: transform\n    timeout_ms: soon\n  - name: u\n    kind: human\n    role: nobody\n    output_schema: {type: object}\n",
            ),
        ],
    );
    let problems = problems_of(dir.path());
    assert_reported(&problems, "package.yaml", "/version", "does not match");
    assert_reported(&problems, "roles/r.yaml", "", "colour");
    assert_reported(&problems, "playbooks/p.yaml", "/steps/1/timeout_ms", "integer");
    assert_reported(&problems, "playbooks/p.yaml", "/steps/0/operation", "unknown operation `ghost`");
    assert_reported(&problems, "playbooks/p.yaml", "/steps/2/role", "unknown role `nobody`");
    assert_eq!(problems.len(), 5, "{}", show(&problems));
}

#[test]
fn every_meta_schema_error_of_a_schema_is_reported() {
    let dir = TempDir::new().expect("temp dir");
    write_files(
        dir.path(),
        &[(
            "solo.yaml",
            "package: solo\nversion: 0.1.0\nroles: [{name: clerk}]\nplaybooks:\n  - name: p\n    role: clerk\n    steps:\n      - name: s\n        kind: human\n        output_schema:\n          type: object\n          properties:\n            a: {type: banana}\n            b: {type: string, minLength: -1}\n",
        )],
    );
    let problems = problems_of(&dir.path().join("solo.yaml"));
    let at = "/playbooks/0/steps/0/output_schema";
    assert_reported(&problems, "solo.yaml", &format!("{at}/properties/a/type"), "banana");
    assert_reported(&problems, "solo.yaml", &format!("{at}/properties/b/minLength"), "-1");
    assert_eq!(problems.len(), 2, "{}", show(&problems));
}

#[test]
fn every_prompt_placeholder_is_checked() {
    let dir = TempDir::new().expect("temp dir");
    write_files(
        dir.path(),
        &[(
            "solo.yaml",
            "package: solo\nversion: 0.1.0\nplaybooks:\n  - name: p\n    steps:\n      - name: s\n        kind: agent\n        output_schema: {type: object}\n        prompt: 'Hello {{ .name }}, {{ .a | first_missing }} and {{ .b | second_missing }}'\n",
        )],
    );
    let problems = problems_of(&dir.path().join("solo.yaml"));
    let here: Vec<&Problem> = problems.iter().filter(|problem| problem.path == "/playbooks/0/steps/0/prompt").collect();
    assert_eq!(here.len(), 2, "{}", show(&problems));
    assert!(
        here[0].message.contains("first_missing") && here[1].message.contains("second_missing"),
        "{}",
        show(&problems)
    );
    assert_eq!(Template::problems("{{ .a }} {{ nope }} {{ .b").len(), 2);
}

// --- Files that cannot be read ---------------------------------------------------------------

#[test]
fn yaml_syntax_error_names_file_and_line() {
    let dir = TempDir::new().expect("temp dir");
    write_files(
        dir.path(),
        &[
            ("package.yaml", "package: p\nversion: 1.0.0\n"),
            ("roles/good.yaml", "name: clerk\n"),
            // Line 3 opens a quote that never closes.
            ("roles/broken.yaml", "name: boss\ndescription: fine\ncapabilities: [\"unterminated]\n"),
        ],
    );
    let problems = problems_of(dir.path());
    assert_eq!(problems.len(), 1, "{}", show(&problems));
    let problem = &problems[0];
    assert!(problem.file.ends_with("roles/broken.yaml"), "{problem}");
    assert!(problem.message.contains("not valid YAML"), "{problem}");
    assert!(problem.message.contains("line 3"), "{problem}");
}

#[test]
fn json_syntax_error_names_file_and_line() {
    let dir = TempDir::new().expect("temp dir");
    write_files(dir.path(), &[("package.json", "{\n  \"package\": \"p\",\n  \"version\": \n}\n")]);
    let problems = problems_of(dir.path());
    assert_eq!(problems.len(), 1, "{}", show(&problems));
    assert!(problems[0].file.ends_with("package.json"), "{}", problems[0]);
    assert!(problems[0].message.contains("not valid JSON (line 4"), "{}", problems[0]);
}

#[test]
fn symlinked_file_inside_the_package_is_refused() {
    // A package may only hold its own files: a link could make the server read anything.
    let outside = TempDir::new().expect("temp dir");
    write_files(outside.path(), &[("secret.yaml", "name: secret\n")]);
    let dir = TempDir::new().expect("temp dir");
    write_files(dir.path(), &[("package.yaml", "package: p\nversion: 1.0.0\n"), ("roles/clerk.yaml", "name: clerk\n")]);
    std::os::unix::fs::symlink(outside.path().join("secret.yaml"), dir.path().join("roles/link.yaml"))
        .expect("symlink");

    let problems = problems_of(dir.path());
    assert_eq!(problems.len(), 1, "{}", show(&problems));
    assert!(problems[0].file.ends_with("roles/link.yaml"), "{}", problems[0]);
    assert!(problems[0].message.contains("symbolic link"), "{}", problems[0]);
}

#[test]
fn symlinked_package_yaml_is_refused() {
    let outside = TempDir::new().expect("temp dir");
    write_files(outside.path(), &[("package.yaml", "package: p\nversion: 1.0.0\n")]);
    let dir = TempDir::new().expect("temp dir");
    std::os::unix::fs::symlink(outside.path().join("package.yaml"), dir.path().join("package.yaml")).expect("symlink");

    let problems = problems_of(dir.path());
    assert_eq!(problems.len(), 1, "{}", show(&problems));
    assert!(problems[0].file.ends_with("/package.yaml"), "{}", problems[0]);
    assert!(problems[0].message.contains("symbolic link"), "{}", problems[0]);
}

// A linked section folder would make the loader read outside the package.
#[test]
fn symlinked_section_folder_is_refused() {
    // `roles/` itself is a link to a folder outside the package; its files are regular files,
    // but reading them still reads outside the package.
    let outside = TempDir::new().expect("temp dir");
    write_files(outside.path(), &[("secret.yaml", "name: secret\n")]);
    let dir = TempDir::new().expect("temp dir");
    write_files(dir.path(), &[("package.yaml", "package: p\nversion: 1.0.0\n")]);
    std::os::unix::fs::symlink(outside.path(), dir.path().join("roles")).expect("symlink");

    let problems = problems_of(dir.path());
    assert_eq!(problems.len(), 1, "{}", show(&problems));
    assert!(problems[0].file.ends_with("/roles"), "{}", problems[0]);
    assert!(problems[0].message.contains("symbolic link"), "{}", problems[0]);
}

// --- Hostile input (regressions found by the fuzz targets in fuzz/) --------------------------

/// A one-file package whose only step runs `program`.
fn package_with_program(program: &str) -> String {
    let quoted = serde_json::to_string(program).expect("a string serializes");
    format!(
        "package: p\nversion: 1.0.0\nplaybooks:\n  - name: run\n    steps:\n      - name: go\n        \
         kind: transform\n        program: {quoted}\n"
    )
}

#[test]
fn deeply_nested_jq_programs_do_not_overflow_the_stack() {
    // Each of these overflowed a 2 MiB stack (an async worker's, or this test thread's) in
    // jaq's lexer, parser or compiler, which aborts the whole process.
    let depth = 5_000;
    let programs = [
        "(".repeat(depth) + "1" + &")".repeat(depth),
        "(".repeat(depth),
        "-".repeat(depth) + "1",
        "1".to_owned() + &" + 1".repeat(depth),
        ".|".repeat(depth) + ".",
        "1 as $x | ".repeat(depth / 2) + ".",
        "{a: ".repeat(depth) + "1" + &"}".repeat(depth),
        "\"\\(".repeat(depth) + "1" + &")\"".repeat(depth),
    ];
    for program in &programs {
        // Compiled or refused, but answered.
        let _ = Program::compile(program);
    }
    assert!(Program::compile(&programs[0]).is_ok());
    let loaded = load_document("deep.yaml", &package_with_program(&programs[2]), Format::Yaml).expect("loads");
    validate(&loaded).unwrap_or_else(|problems| panic!("a deep but valid program is valid:{}", show(&problems)));
}

#[test]
fn jq_programs_longer_than_the_limit_are_refused() {
    let program = ".".to_owned() + &" | .".repeat(Program::MAX_BYTES / 4);
    let loaded = load_document("long.yaml", &package_with_program(&program), Format::Yaml).expect("loads");
    let problems = validate(&loaded).expect_err("too long");
    assert_reported(&problems, "long.yaml", "/playbooks/0/steps/0/program", "may be at most 32768 bytes");
    assert!(Program::compile(&(" ".repeat(Program::MAX_BYTES - 1) + ".")).is_ok());
}

#[test]
fn templates_with_too_many_placeholders_are_refused() {
    let placeholders = |count: usize| "{{ .a }} ".repeat(count);
    assert!(Template::compile(&placeholders(Template::MAX_PLACEHOLDERS)).is_ok());
    let error = Template::compile(&placeholders(Template::MAX_PLACEHOLDERS + 1)).expect_err("too many");
    assert!(error.contains("at most 100 placeholders") && error.contains("byte 900"), "{error}");
}

#[test]
fn deeply_nested_yaml_is_refused_before_it_is_parsed() {
    // libyaml took about a minute over these 400 KB and hours over a whole 8 MiB package,
    // because it looks at every open flow collection for every token.
    let text = "package: p\nversion: 1.0.0\nx: ".to_owned() + &"{a: ".repeat(100_000);
    let started = std::time::Instant::now();
    let problems = load_document("deep.yaml", &text, Format::Yaml).expect_err("too deep");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_eq!(problems.len(), 1, "{}", show(&problems));
    assert!(problems[0].message.contains("line 3, column 516"), "{}", problems[0]);
    assert!(problems[0].message.contains("nested more than 128 levels"), "{}", problems[0]);
    // Up to the limit is fine, and the JSON parser has a limit of its own.
    let deep = "x: ".to_owned() + &"[".repeat(120) + &"]".repeat(120);
    load_document("deep.yaml", &deep, Format::Yaml).unwrap_or_else(|problems| panic!("{}", show(&problems)));
    let problems = load_document("deep.json", &"[".repeat(100_000), Format::Json).expect_err("too deep");
    assert!(problems[0].message.contains("recursion limit"), "{}", problems[0]);
}

// --- The committed schema --------------------------------------------------------------------

#[test]
fn committed_schema_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/package.schema.json");
    let committed = fs::read_to_string(&path).unwrap_or_default();
    // Compare booleans rather than the texts so the failure shows the fix, not a huge diff.
    assert!(
        committed == orgata::package::schema_text(),
        "schema/package.schema.json is out of date with the package types; \
         run `cargo run -- package schema --out schema/package.schema.json`"
    );
}

/// Webhook headers are checked where they are written: a header Orgata sets itself and a
/// malformed name are problems; a webhook step that posts the whole context is a warning (the
/// package stays valid), with its file and path.
#[test]
fn webhook_headers_are_checked_and_unmapped_webhooks_warned_about() {
    let dir = TempDir::new().expect("temp dir");
    let broken = r#"
package: hooks
version: 1.0.0
playbooks:
  - name: main
    steps:
      - name: call
        kind: webhook
        url: http://127.0.0.1:9/hook
        method: PATCH
        headers:
          Idempotency-Key: mine
          "bad header": x
          Authorization: {secret: crm-token}
"#;
    write_files(dir.path(), &[("package.yaml", broken)]);
    let problems = problems_of(&dir.path().join("package.yaml"));
    assert_reported(&problems, "package.yaml", "/playbooks/0/steps/0/headers/Idempotency-Key", "set by Orgata");
    assert_reported(
        &problems,
        "package.yaml",
        "/playbooks/0/steps/0/headers/bad header",
        "not a valid HTTP header name",
    );
    assert_eq!(problems.len(), 2, "{}", show(&problems));

    let fine = broken.replace("          Idempotency-Key: mine\n", "").replace("          \"bad header\": x\n", "");
    write_files(dir.path(), &[("package.yaml", &fine)]);
    let loaded = load_path(&dir.path().join("package.yaml")).expect("loads");
    let package = validate(&loaded).unwrap_or_else(|problems| panic!("{}", show(&problems)));
    let warnings = orgata::package::webhooks::warnings(&loaded, &package);
    assert_eq!(warnings.len(), 1, "{}", show(&warnings));
    assert!(warnings[0].file.ends_with("package.yaml") && warnings[0].path == "/playbooks/0/steps/0");
    assert!(warnings[0].message.contains("whole execution context"), "{}", warnings[0]);
    let mapped = fine.replace("        method: PATCH\n", "        method: PATCH\n        input: '{id: .input.id}'\n");
    write_files(dir.path(), &[("package.yaml", &mapped)]);
    let loaded = load_path(&dir.path().join("package.yaml")).expect("loads");
    let package = validate(&loaded).unwrap_or_else(|problems| panic!("{}", show(&problems)));
    assert!(orgata::package::webhooks::warnings(&loaded, &package).is_empty());
}
