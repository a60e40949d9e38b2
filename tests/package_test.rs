//! `orgata package test` as an author uses it: the examples' tests pass, and a branch that
//! breaks the playbook's own output schema is caught with the step and path that broke.

use std::path::Path;
use std::process::{Command, Output};

fn orgata(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orgata")).args(args).output().expect("run orgata")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn every_example_passes_its_tests() {
    for name in ["kitchen", "expenses.yaml", "onboarding.yaml", "inquiries.yaml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name);
        let output = orgata(&["package", "test", path.to_str().expect("UTF-8 path")]);
        let stdout = text(&output.stdout);
        assert!(output.status.success(), "{name}:\n{stdout}\n{}", text(&output.stderr));
        assert!(stdout.lines().filter(|line| line.starts_with("PASS ")).count() >= 2, "{name}:\n{stdout}");
        assert!(stdout.trim_end().ends_with(" passed, 0 failed"), "{name}:\n{stdout}");
        assert!(!stdout.contains("not covered") && !stdout.contains("untested"), "{name} covers every step:\n{stdout}");
    }
}

/// A booking whose decline branch answers with a price the output schema forbids.
const BOOKING: &str = r#"
package: studio
version: 1.0.0
roles:
  - name: owner
playbooks:
  - name: booking
    input_schema:
      type: object
      required: [client]
      properties: {client: {type: string}}
    output_schema:
      type: object
      required: [status, price]
      properties:
        status: {enum: [booked, declined]}
        price: {type: number, minimum: 1}
    output: '.steps.quote'
    steps:
      - name: qualify
        kind: human
        role: owner
        output_schema:
          type: object
          required: [accept]
          properties: {accept: {type: boolean}}
        simulated_output: {accept: true}
      - name: quote
        kind: transform
        program: 'if .steps.qualify.accept then {status: "booked", price: 900} else {status: "declined", price: 0} end'
      - name: follow-up
        kind: transform
        when: '.steps.quote.status == "booked" and .input.client == "vip"'
        program: '{sent: true}'
tests:
  - name: accepted
    playbook: booking
    input: {client: Ann}
    expect:
      output: {status: booked, price: 900}
  - name: declined
    playbook: booking
    input: {client: Bo}
    outputs:
      qualify: {accept: false}
    expect:
      output: {status: declined, price: 1}
"#;

#[test]
fn a_broken_branch_fails_with_its_step_and_path() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("studio.yaml");
    std::fs::write(&path, BOOKING).expect("package file");
    let output = orgata(&["package", "test", path.to_str().expect("UTF-8 path")]);
    let stdout = text(&output.stdout);
    assert!(!output.status.success(), "a failing test fails the command:\n{stdout}");
    assert!(stdout.contains("PASS accepted (booking)"), "{stdout}");
    let failed = stdout.lines().find(|line| line.starts_with("FAIL declined (booking)")).unwrap_or_default();
    // The decline branch's output breaks the schema at /price, right after step `quote`.
    assert!(failed.contains("ended FAILED at step `quote`") && failed.contains("/price"), "{stdout}");
    // No test takes the VIP follow-up: its step is reported as never run.
    assert!(stdout.contains("not covered: booking/follow-up"), "{stdout}");
    assert!(stdout.trim_end().ends_with("1 passed, 1 failed"), "{stdout}");
}

#[test]
fn tests_are_validated_with_file_and_path_before_anything_runs() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let root = directory.path();
    std::fs::create_dir_all(root.join("playbooks")).expect("folder");
    std::fs::create_dir_all(root.join("tests")).expect("folder");
    std::fs::write(root.join("package.yaml"), "package: tiny\nversion: 1.0.0\n").expect("file");
    std::fs::write(
        root.join("playbooks/p.yaml"),
        "name: p\ninput_schema: {type: object, required: [n], properties: {n: {type: integer}}}\nsteps:\n  - name: s\n    kind: transform\n    program: '.input'\n",
    )
    .expect("file");
    std::fs::write(
        root.join("tests/cases.yaml"),
        "- name: wrong input\n  playbook: p\n  input: {n: two}\n- name: no such playbook\n  playbook: q\n- name: no such step\n  playbook: p\n  input: {n: 2}\n  outputs: {t: {}}\n",
    )
    .expect("file");
    let output = orgata(&["package", "test", root.to_str().expect("UTF-8 path")]);
    let stderr = text(&output.stderr);
    assert!(!output.status.success());
    let file = root.join("tests/cases.yaml").display().to_string();
    for expected in [
        format!("{file}: /0/input/n: does not fit the playbook's input schema"),
        format!("{file}: /1/playbook: unknown playbook `q`"),
        format!("{file}: /2/outputs/t: playbook `p` has no step `t`"),
    ] {
        assert!(stderr.contains(&expected), "missing {expected:?} in:\n{stderr}");
    }
    assert!(text(&output.stdout).is_empty(), "nothing ran");
}
