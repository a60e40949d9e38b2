//! `orgata deploy` as an author uses it: a multi-file package into the database on this
//! machine, and to a running server over REST, with every problem shown at its file and path.

#[path = "common/server.rs"]
mod server;

use std::path::Path;
use std::process::Output;

use server::TestServer;

/// A package in three files, calling a webhook at `url`.
fn write_package(root: &Path, name: &str, url: &str) {
    let files = [
        ("package.yaml".to_owned(), format!("package: {name}\nversion: 1.0.0\n")),
        ("roles/clerk.yaml".to_owned(), "name: clerk\n".to_owned()),
        (
            "playbooks/notify.yaml".to_owned(),
            format!(
                "name: notify\nsteps:\n  - name: shape\n    kind: transform\n    program: '{{ok: true}}'\n  - name: call\n    kind: webhook\n    url: {url}\n"
            ),
        ),
    ];
    for (file, text) in files {
        let path = root.join(file);
        std::fs::create_dir_all(path.parent().expect("a parent folder")).expect("folder");
        std::fs::write(path, text).expect("package file");
    }
}

/// Runs `orgata deploy` with `args` off the async runtime's threads.
async fn deploy(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_orgata"))
            .arg("deploy")
            .args(&args)
            .env_remove("ORGATA_URL")
            .env_remove("ORGATA_TOKEN")
            .output()
            .expect("run orgata deploy")
    })
    .await
    .expect("the command ran")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn deploys_a_multi_file_package_into_the_local_database() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let package = directory.path().join("package");
    write_package(&package, "notices", "http://127.0.0.1:9/hook");
    let database = format!("sqlite://{}?mode=rwc", directory.path().join("orgata.db").display());
    let args = |environment: &str| {
        vec![
            package.display().to_string(),
            "--environment".to_owned(),
            environment.to_owned(),
            "--database-url".to_owned(),
            database.clone(),
        ]
    };
    // The local operator deploys anywhere; a webhook must still be on the allow-list, which a
    // database on its own does not have: the refusal names the file and path of the step.
    let refused = deploy(args("staging")).await;
    assert!(!refused.status.success(), "stdout: {}", text(&refused.stdout));
    let stderr = text(&refused.stderr);
    assert!(stderr.contains("playbooks/notify.yaml") && stderr.contains("/steps/1/url"), "stderr:\n{stderr}");

    write_package(&package, "notices", "");
    std::fs::write(
        package.join("playbooks/notify.yaml"),
        "name: notify\nsteps:\n  - name: shape\n    kind: transform\n    program: '{ok: true}'\n",
    )
    .expect("package file");
    let deployed = deploy(args("staging")).await;
    assert!(deployed.status.success(), "stderr: {}", text(&deployed.stderr));
    assert_eq!(text(&deployed.stdout).trim(), "deployed notices-v1 version 1 into staging");
    // The same package again is that version; an unknown environment is refused.
    let again = deploy(args("STAGING")).await;
    assert_eq!(text(&again.stdout).trim(), "deployed notices-v1 version 1 into staging");
    let unknown = deploy(args("qa")).await;
    assert!(!unknown.status.success());
    assert!(text(&unknown.stderr).contains("--environment"), "{}", text(&unknown.stderr));
}

#[tokio::test]
async fn deploys_to_a_running_server_and_maps_its_refusals_to_files() {
    let server = TestServer::start().await;
    let directory = tempfile::tempdir().expect("temporary directory");
    write_package(directory.path(), "hooks", "https://outside.example.test/hook");
    let args = || vec![directory.path().display().to_string(), "--url".to_owned(), server.base.clone()];
    // Valid here, refused by the server (the URL is on no allow-list): the server's pointer is
    // shown at the file it came from.
    let refused = deploy(args()).await;
    assert!(!refused.status.success());
    let stderr = text(&refused.stderr);
    let file = directory.path().join("playbooks/notify.yaml").display().to_string();
    assert!(stderr.contains(&format!("{file}: /steps/1/url")), "stderr:\n{stderr}");

    // A problem found here never reaches the server.
    std::fs::write(directory.path().join("roles/clerk.yaml"), "name: 'not a valid name!'\n").expect("role file");
    let invalid = deploy(args()).await;
    let stderr = text(&invalid.stderr);
    assert!(stderr.contains("roles/clerk.yaml"), "stderr:\n{stderr}");

    std::fs::write(directory.path().join("roles/clerk.yaml"), "name: clerk\n").expect("role file");
    std::fs::write(
        directory.path().join("playbooks/notify.yaml"),
        "name: notify\nsteps:\n  - name: shape\n    kind: transform\n    program: '{ok: true}'\n",
    )
    .expect("playbook file");
    let deployed = deploy(args()).await;
    assert!(deployed.status.success(), "stderr: {}", text(&deployed.stderr));
    assert_eq!(text(&deployed.stdout).trim(), "deployed hooks-v1 version 1 into development");
    let runtime: serde_json::Value = server
        .client
        .get(format!("{}/api/v1/runtimes/hooks-v1", server.base))
        .send()
        .await
        .expect("GET the runtime")
        .json()
        .await
        .expect("JSON");
    assert_eq!(runtime["playbooks"][0]["name"], "notify", "{runtime}");
}
