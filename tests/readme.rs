//! The README's walk runs as printed against a live server, so the README stays true.

#[path = "common/server.rs"]
mod server;

use server::TestServer;

#[tokio::test]
async fn the_readme_walk_works_as_printed() {
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).expect("README");
    let walk = readme
        .split("## Walk")
        .nth(1)
        .and_then(|section| section.split("```sh\n").nth(1))
        .and_then(|block| block.split("```").next())
        .expect("the README has a ```sh block under ## Walk");
    let server = TestServer::start().await;
    let output = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(walk)
        .env("ORGATA", &server.base)
        .output()
        .await
        .expect("bash runs the walk");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "the walk failed: {printed}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(printed.contains(r#""status":"WAITING","currentStep":"choose-jelly""#), "{printed}");
    assert!(printed.contains("Which jelly flavour for this classic sandwich?"), "{printed}");
    assert!(printed.contains(r#""status":"COMPLETED","output":{"name":"PB&J","flavor":"grape"}"#), "{printed}");
}
