//! The README's walks run as printed against a live server, so the README stays true.

#[path = "common/server.rs"]
mod server;

use server::TestServer;

/// The first ```sh block under the heading that starts with `heading`.
fn block(heading: &str) -> String {
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).expect("README");
    readme
        .split(heading)
        .nth(1)
        .and_then(|section| section.split("```sh\n").nth(1))
        .and_then(|block| block.split("```").next())
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("the README has a ```sh block under {heading}"))
}

async fn run(walk: &str, server: &TestServer) -> String {
    let output = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(walk)
        .env("ORGATA", &server.base)
        .output()
        .await
        .expect("bash runs the walk");
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "the walk failed: {printed}\n{}", String::from_utf8_lossy(&output.stderr));
    printed
}

#[tokio::test]
async fn the_graphql_walk_works_as_printed() {
    let server = TestServer::start().await;
    let printed = run(&block("## Walk: a peanut butter"), &server).await;
    assert!(printed.contains(r#""status":"WAITING","currentStep":"choose-jelly""#), "{printed}");
    assert!(printed.contains("Which jelly flavour for this classic sandwich?"), "{printed}");
    assert!(printed.contains(r#""status":"COMPLETED","output":{"name":"PB&J","flavor":"grape"}"#), "{printed}");
}

#[tokio::test]
async fn the_rest_walk_works_as_printed() {
    let server = TestServer::start().await;
    let printed = run(&block("## Walk: the same sandwich over REST"), &server).await;
    assert!(printed.contains(r#""status":"WAITING""#), "{printed}");
    assert!(printed.contains(r#""output":{"name":"PB&J","flavor":"grape"}"#), "{printed}");
    assert!(printed.contains(r#""status":"COMPLETED""#), "{printed}");
}
