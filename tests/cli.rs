//! The `orgata` binary as an author uses it: `package validate` and `package schema`.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use tempfile::TempDir;

/// Writes `files` (path relative to `root`, contents) under `root`, creating folders as needed.
fn write_files(root: &Path, files: &[(&str, &str)]) {
    for (name, contents) in files {
        let path = root.join(name);
        fs::create_dir_all(path.parent().expect("a file has a parent folder")).expect("create folder");
        fs::write(&path, contents).expect("write package file");
    }
}

/// Runs the real `orgata` binary with `args`.
fn orgata(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orgata")).args(args).output().expect("run orgata")
}

/// `orgata package validate <path>`, returning (succeeded, stdout, stderr).
fn validate(path: &Path) -> (bool, String, String) {
    let output = orgata(&["package", "validate", path.to_str().expect("UTF-8 path")]);
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn example(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name)
}

#[test]
fn validate_accepts_every_example() {
    for name in ["kitchen", "onboarding.yaml", "expenses.yaml"] {
        let (ok, stdout, stderr) = validate(&example(name));
        assert!(ok, "{name} should validate; stderr:\n{stderr}");
        assert!(stdout.contains("is valid"), "{name}: no success line; stdout:\n{stdout}");
        assert!(stderr.is_empty(), "{name}: unexpected stderr:\n{stderr}");
    }
}

#[test]
fn validate_reports_every_problem_with_file_and_path() {
    let dir = TempDir::new().expect("temp dir");
    write_files(
        dir.path(),
        &[
            ("package.yaml", "package: broken\nversion: 1.0.0\n"),
            ("roles/clerk.yaml", "name: clerk\n"),
            (
                "playbooks/p.yaml",
                r#"
name: p
steps:
  - name: missing-op
    operation: no-such-operation
  - name: ask
    kind: human
    role: ghost
    output_schema: {type: object}
  - name: bad-program
    kind: transform
    program: 'undefined_fn'
"#,
            ),
        ],
    );
    let (ok, stdout, stderr) = validate(dir.path());
    assert!(!ok, "a broken package must make the command fail; stdout:\n{stdout}");
    assert!(!stdout.contains("is valid"), "no success line for a broken package; stdout:\n{stdout}");

    // Each problem is one `file: /path: message` line; the file is shown as the package
    // directory given on the command line joined with the file inside it.
    let file = dir.path().join("playbooks/p.yaml").display().to_string();
    for expected in [
        format!("{file}: /steps/0/operation: unknown operation `no-such-operation`"),
        format!("{file}: /steps/1/role: unknown role `ghost`"),
        format!("{file}: /steps/2/program: jq program does not compile"),
    ] {
        assert!(
            stderr.lines().any(|line| line.starts_with(&expected)),
            "missing problem line starting with {expected:?}; stderr:\n{stderr}"
        );
    }
    let count = format!("{}: 3 problem(s)", dir.path().display());
    assert!(stderr.lines().any(|line| line == count), "missing count line {count:?}; stderr:\n{stderr}");
    assert_eq!(stderr.lines().count(), 4, "three problems and the count line; stderr:\n{stderr}");
}

#[test]
fn validate_fails_on_a_path_that_is_not_a_package() {
    let dir = TempDir::new().expect("temp dir");
    let (ok, _, stderr) = validate(dir.path());
    assert!(!ok);
    assert!(stderr.contains("no package.yaml"), "stderr:\n{stderr}");
}

#[test]
fn schema_prints_the_package_json_schema() {
    let output = orgata(&["package", "schema"]);
    assert!(output.status.success(), "stderr:\n{}", String::from_utf8_lossy(&output.stderr));
    let schema: serde_json::Value = serde_json::from_slice(&output.stdout).expect("the schema is JSON");
    assert_eq!(schema["title"], "Orgata package");
    // The same text the library produces (and the committed copy must equal).
    assert_eq!(String::from_utf8_lossy(&output.stdout), orgata::package::schema_text());
}

#[test]
fn schema_out_writes_the_file() {
    let dir = TempDir::new().expect("temp dir");
    let out = dir.path().join("package.schema.json");
    let output = orgata(&["package", "schema", "--out", out.to_str().expect("UTF-8 path")]);
    assert!(output.status.success(), "stderr:\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.stdout.is_empty(), "with --out nothing goes to stdout");
    assert_eq!(fs::read_to_string(&out).expect("written"), orgata::package::schema_text());
}
