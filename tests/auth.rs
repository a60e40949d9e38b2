//! Authentication and permissions against the running server: one permission table, asserted
//! over GraphQL and over REST alike, plus revocation, roles, JWTs and secrets in logs.

#[path = "common/mcp_client.rs"]
mod mcp_client;
#[path = "common/server.rs"]
mod server;

use std::time::Duration;

use serde_json::{Value, json};

use server::TestServer;

const ADMIN_GRANTS: &str = "production:admin,staging:admin,development:admin,simulation:admin";

/// What a principal tries: reading and deploying, starting, and every steering action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    ReadRuntime,
    Deploy,
    Start,
    ReadExecution,
    Answer,
    Pause,
    Resume,
    Abort,
    Retry,
    Skip,
    Back,
    Jump,
    EditState,
}

const ACTIONS: [Action; 13] = [
    Action::ReadRuntime,
    Action::Deploy,
    Action::Start,
    Action::ReadExecution,
    Action::Answer,
    Action::Pause,
    Action::Resume,
    Action::Abort,
    Action::Retry,
    Action::Skip,
    Action::Back,
    Action::Jump,
    Action::EditState,
];
const ENVIRONMENTS: [&str; 3] = ["production", "staging", "development"];

impl Action {
    /// The engine's name of a steering action.
    fn steering(self) -> Option<&'static str> {
        Some(match self {
            Action::Answer => "RESPOND",
            Action::Pause => "PAUSE",
            Action::Resume => "RESUME",
            Action::Abort => "ABORT",
            Action::Retry => "RETRY",
            Action::Skip => "SKIP",
            Action::Back => "BACK",
            Action::Jump => "JUMP",
            Action::EditState => "EDIT_STATE",
            Action::ReadRuntime | Action::Deploy | Action::Start | Action::ReadExecution => return None,
        })
    }
}

/// The permission table: (principal, environment, action) → allowed. The same table holds for
/// every protocol. The steering rule (ARCHITECTURE.md): PAUSE, RESUME and ABORT need
/// `write:execution`; moves that decide for the current step also need `write:intervention`
/// and the step's role (`cook` in pbj), unless the caller administers the environment.
fn allowed(principal: &str, environment: &str, action: Action) -> bool {
    use Action::*;
    let control = matches!(action, ReadRuntime | Start | ReadExecution | Pause | Resume | Abort);
    match (principal, environment) {
        // production defaults: read everything, run and steer processes, deploy nothing.
        ("prod", "production") => action != Deploy,
        // the same grants without the cook role: no step moves on a cook's step.
        ("waiter", "production") => control,
        // may run executions but not write interventions: no step moves, role or not.
        ("operator", "production") => control,
        // development defaults: everything, and admin (so it answers without the role).
        ("dev", "development") => true,
        ("reader", "staging") => matches!(action, ReadRuntime | ReadExecution),
        _ => false,
    }
}

struct World {
    server: TestServer,
    ops: String,
    tokens: Vec<(&'static str, String)>,
}

fn runtime(environment: &str) -> String {
    match environment {
        "development" => "kitchen-v1".to_owned(),
        other => format!("kitchen-{other}"),
    }
}

impl World {
    async fn new() -> World {
        let server = TestServer::start().await;
        let ops = server.create_key("ops", "", ADMIN_GRANTS);
        let kitchen = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/kitchen/playbooks/pbj-sandwich.yaml"
        ))
        .expect("playbook");
        let operation = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/kitchen/operations/gather-ingredients.yaml"
        ))
        .expect("operation");
        let package = json!({
            "package": "kitchen", "version": "1.0.0",
            "roles": [{"name": "cook"}],
            "operations": [serde_yaml_ng::from_str::<Value>(&operation).expect("yaml")],
            "playbooks": [serde_yaml_ng::from_str::<Value>(&kitchen).expect("yaml")],
        });
        for environment in ["production", "staging"] {
            let body = server
                .graphql_as(
                    &ops,
                    "mutation($input: DeployRuntimeInput!) { deployRuntime(input: $input) { id } }",
                    json!({"input": {"runtimeId": runtime(environment), "environment": environment.to_uppercase(), "package": package}}),
                )
                .await;
            assert!(body.get("errors").is_none(), "{body}");
        }
        let tokens = vec![
            ("prod", server.create_key("prod", "cook", "production")),
            ("dev", server.create_key("dev", "", "development")),
            ("reader", server.create_key("reader", "cook", "staging:read")),
            ("waiter", server.create_key("waiter", "waiter", "production")),
            ("operator", server.create_key("operator", "cook", "production:read,production:write:execution")),
        ];
        World { server, ops, tokens }
    }
}

/// An execution of pbj standing at its cook's step, set up by the administrator (and paused
/// when the action to try is RESUME): its id and its pending intervention.
async fn waiting_pbj(world: &World, environment: &str, action: Action) -> (String, String) {
    let server = &world.server;
    let id = server.start_pbj(Some(&world.ops), &runtime(environment)).await;
    let intervention =
        server.pending_intervention(Some(&world.ops), &id).await["id"].as_str().expect("intervention id").to_owned();
    if action == Action::Resume {
        let body = server
            .graphql_as(&world.ops, "mutation($id: ID!) { pauseExecution(id: $id) { id } }", json!({"id": id}))
            .await;
        assert!(body.get("errors").is_none(), "{body}");
    }
    (id, intervention)
}

/// What a steering action takes besides its name.
fn steering_arguments(action: Action) -> Value {
    match action {
        Action::Skip => json!({"output": {"jelly_flavor": "grape"}}),
        Action::Jump => json!({"step": "gather-ingredients"}),
        Action::EditState => json!({"patch": {"note": "edited"}}),
        Action::Abort => json!({"reason": "no bread"}),
        _ => json!({}),
    }
}

/// `base` with `extra`'s fields added.
fn merged(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
    base
}

const DEPLOY_SOURCE: &str =
    "package: desk\nversion: 1.0.0\nplaybooks: [{name: p, steps: [{name: s, kind: transform, program: '.'}]}]\n";

/// Tries one action over GraphQL; true if allowed, false if FORBIDDEN (anything else fails).
async fn graphql_try(world: &World, token: &str, environment: &str, action: Action) -> bool {
    let server = &world.server;
    let (query, variables) = match action {
        Action::ReadRuntime => ("query($id: String!) { runtime(id: $id) { id } }", json!({"id": runtime(environment)})),
        Action::Deploy => (
            "mutation($input: DeployRuntimeInput!) { deployRuntime(input: $input) { id } }",
            json!({"input": {"runtimeId": format!("desk-{environment}"), "environment": environment.to_uppercase(), "source": DEPLOY_SOURCE}}),
        ),
        Action::Start => (
            "mutation($runtime: String!) { executePlaybook(input: {runtimeId: $runtime, playbook: \"pbj-sandwich\", input: {sandwichType: \"classic\"}}) { id } }",
            json!({"runtime": runtime(environment)}),
        ),
        Action::ReadExecution => {
            let id = server.start_pbj(Some(&world.ops), &runtime(environment)).await;
            ("query($id: ID!) { execution(id: $id) { id } }", json!({"id": id}))
        }
        Action::Answer => {
            let (id, intervention) = waiting_pbj(world, environment, action).await;
            (
                "mutation($id: ID!, $i: ID!) { respondToIntervention(input: {executionId: $id, interventionId: $i, response: {jelly_flavor: \"grape\"}}) { id } }",
                json!({"id": id, "i": intervention}),
            )
        }
        Action::Pause | Action::Resume => {
            let (id, _) = waiting_pbj(world, environment, action).await;
            let query = if action == Action::Pause {
                "mutation($id: ID!) { pauseExecution(id: $id) { id } }"
            } else {
                "mutation($id: ID!) { resumeExecution(id: $id) { id } }"
            };
            (query, json!({"id": id}))
        }
        Action::Abort => {
            let (id, _) = waiting_pbj(world, environment, action).await;
            ("mutation($id: ID!) { abortExecution(id: $id, reason: \"no bread\") { id } }", json!({"id": id}))
        }
        Action::Retry | Action::Skip | Action::Back | Action::Jump | Action::EditState => {
            let (id, _) = waiting_pbj(world, environment, action).await;
            let input = merged(json!({"executionId": id, "action": action.steering()}), steering_arguments(action));
            (
                "mutation($input: InterveneExecutionInput!) { interveneExecution(input: $input) { id } }",
                json!({"input": input}),
            )
        }
    };
    let body = server.graphql_as(token, query, variables).await;
    match body["errors"][0]["extensions"]["code"].as_str() {
        None => true,
        Some("FORBIDDEN") => false,
        Some(other) => panic!("{action:?} in {environment}: unexpected {other}: {body}"),
    }
}

/// Tries one action over MCP (both revisions must agree); true if allowed, false if the tool
/// error is FORBIDDEN (anything else fails).
async fn mcp_try(world: &World, token: &str, environment: &str, action: Action) -> bool {
    let server = &world.server;
    let mut verdicts = Vec::new();
    for revision in mcp_client::REVISIONS {
        let session = mcp_client::connect(&server.base, revision, Some(token)).await.expect("connects");
        let (tool, arguments) = match action {
            Action::ReadRuntime => ("get_runtime", json!({"runtimeId": runtime(environment)})),
            Action::Deploy => (
                "deploy_runtime",
                json!({"runtimeId": format!("desk-{environment}"), "environment": environment.to_uppercase(), "source": DEPLOY_SOURCE}),
            ),
            Action::Start => (
                "execute_playbook",
                json!({"runtimeId": runtime(environment), "playbookName": "pbj-sandwich", "input": {"sandwichType": "classic"}}),
            ),
            Action::ReadExecution => (
                "get_execution",
                json!({"executionId": server.start_pbj(Some(&world.ops), &runtime(environment)).await}),
            ),
            Action::Answer => {
                let (id, intervention) = waiting_pbj(world, environment, action).await;
                (
                    "intervene_execution",
                    json!({"executionId": id, "interventionId": intervention, "response": {"jelly_flavor": "grape"}}),
                )
            }
            Action::Pause => {
                ("pause_execution", json!({"executionId": waiting_pbj(world, environment, action).await.0}))
            }
            Action::Resume => {
                ("resume_execution", json!({"executionId": waiting_pbj(world, environment, action).await.0}))
            }
            Action::Abort => {
                let (id, _) = waiting_pbj(world, environment, action).await;
                ("abort_execution", json!({"executionId": id, "reason": "no bread"}))
            }
            Action::Retry | Action::Skip | Action::Back | Action::Jump | Action::EditState => {
                let (id, _) = waiting_pbj(world, environment, action).await;
                let arguments = json!({"executionId": id, "action": action.steering()});
                ("intervene_execution", merged(arguments, steering_arguments(action)))
            }
        };
        let result = mcp_client::call(&session, tool, arguments).await;
        let verdict = match result.is_error {
            Some(true) => match mcp_client::failure(&result)["code"].as_str() {
                Some("FORBIDDEN") => false,
                other => panic!(
                    "{action:?} in {environment} over MCP {revision}: unexpected {other:?}: {:?}",
                    result.content
                ),
            },
            _ => true,
        };
        verdicts.push(verdict);
        session.cancel().await.expect("closed");
    }
    assert!(
        verdicts.iter().all(|verdict| *verdict == verdicts[0]),
        "{action:?} in {environment}: the MCP revisions disagree"
    );
    verdicts[0]
}

/// Tries one action over REST; true if allowed, false if 403 (anything else fails).
async fn rest_try(world: &World, token: &str, environment: &str, action: Action) -> bool {
    let server = &world.server;
    let base = format!("{}/api/v1", server.base);
    let request = match action {
        Action::ReadRuntime => server.client.get(format!("{base}/runtimes/{}", runtime(environment))),
        Action::Deploy => server
            .client
            .post(format!("{base}/runtimes?environment={}&runtimeId=desk-{environment}", environment.to_uppercase()))
            .header("content-type", "application/yaml")
            .body(DEPLOY_SOURCE),
        Action::Start => server
            .client
            .post(format!("{base}/runtimes/{}/executions", runtime(environment)))
            .json(&json!({"playbookName": "pbj-sandwich", "input": {"sandwichType": "classic"}})),
        Action::ReadExecution => {
            let id = server.start_pbj(Some(&world.ops), &runtime(environment)).await;
            server.client.get(format!("{base}/executions/{id}"))
        }
        Action::Answer => {
            let (id, intervention) = waiting_pbj(world, environment, action).await;
            server
                .client
                .post(format!("{base}/executions/{id}/interventions/{intervention}"))
                .json(&json!({"response": {"jelly_flavor": "grape"}}))
        }
        Action::Pause => {
            let (id, _) = waiting_pbj(world, environment, action).await;
            server.client.post(format!("{base}/executions/{id}/pause"))
        }
        Action::Resume => {
            let (id, _) = waiting_pbj(world, environment, action).await;
            server.client.post(format!("{base}/executions/{id}/resume"))
        }
        Action::Abort => {
            let (id, _) = waiting_pbj(world, environment, action).await;
            server.client.post(format!("{base}/executions/{id}/abort")).json(&json!({"reason": "no bread"}))
        }
        Action::Retry | Action::Skip | Action::Back | Action::Jump | Action::EditState => {
            let (id, _) = waiting_pbj(world, environment, action).await;
            let body = merged(json!({"action": action.steering()}), steering_arguments(action));
            server.client.post(format!("{base}/executions/{id}/actions")).json(&body)
        }
    };
    let response = request.bearer_auth(token).send().await.expect("sent");
    match response.status().as_u16() {
        200 | 201 => true,
        403 => false,
        other => {
            panic!("{action:?} in {environment}: unexpected {other}: {}", response.text().await.unwrap_or_default())
        }
    }
}

/// What `allowedActions` must list for `principal` in production: on pbj's pending cook
/// intervention (what a TASK offers) and on its WAITING execution (what is legal there,
/// RESPOND being listed per intervention).
fn expected_actions(principal: &str, offered: &[Action]) -> Vec<&'static str> {
    let mut expected: Vec<&str> = offered
        .iter()
        .filter(|action| allowed(principal, "production", **action))
        .filter_map(|action| action.steering())
        .collect();
    expected.sort_unstable();
    expected
}

fn sorted(list: &Value) -> Vec<&str> {
    let mut names: Vec<&str> = list.as_array().expect("a list").iter().filter_map(Value::as_str).collect();
    names.sort_unstable();
    names
}

#[tokio::test]
async fn allowed_actions_say_exactly_what_the_caller_may_do() {
    let world = World::new().await;
    let server = &world.server;
    let (id, _) = waiting_pbj(&world, "production", Action::Pause).await;
    let on_task = [Action::Answer, Action::Skip, Action::Retry, Action::Abort];
    let on_waiting =
        [Action::Retry, Action::Skip, Action::Back, Action::Jump, Action::EditState, Action::Pause, Action::Abort];
    for (name, token) in &world.tokens {
        let body = server
            .graphql_as(
                token,
                "query($id: ID!) { execution(id: $id) { allowedActions interventions(status: PENDING) { allowedActions answerable } } }",
                json!({"id": id}),
            )
            .await;
        if body["errors"][0]["extensions"]["code"] == "FORBIDDEN" {
            assert!(!allowed(name, "production", Action::ReadExecution), "{name}: {body}");
            continue;
        }
        let execution = &body["data"]["execution"];
        assert_eq!(sorted(&execution["allowedActions"]), expected_actions(name, &on_waiting), "{name}: {body}");
        let intervention = &execution["interventions"][0];
        assert_eq!(sorted(&intervention["allowedActions"]), expected_actions(name, &on_task), "{name}: {body}");
        assert_eq!(intervention["answerable"], allowed(name, "production", Action::Answer), "{name}: {body}");
        // What REST's representation of the execution says is the same list.
        let response = server
            .client
            .get(format!("{}/api/v1/executions/{id}", server.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("sent");
        let rest: Value = response.json().await.expect("json");
        assert_eq!(sorted(&rest["allowedActions"]), expected_actions(name, &on_waiting), "{name} over REST: {rest}");
    }
    // A resolved intervention offers nothing to anyone.
    let intervention =
        server.pending_intervention(Some(&world.ops), &id).await["id"].as_str().expect("intervention id").to_owned();
    let body = server
        .graphql_as(
            &world.ops,
            "mutation($id: ID!, $i: ID!) { respondToIntervention(input: {executionId: $id, interventionId: $i, response: {jelly_flavor: \"grape\"}}) { interventions { allowedActions answerable } } }",
            json!({"id": id, "i": intervention}),
        )
        .await;
    let resolved = &body["data"]["respondToIntervention"]["interventions"][0];
    assert_eq!(resolved["allowedActions"], json!([]), "{body}");
    assert_eq!(resolved["answerable"], false, "{body}");
}

#[tokio::test]
async fn one_permission_table_holds_on_every_protocol() {
    let world = World::new().await;
    let mut mismatches = Vec::new();
    for (name, token) in &world.tokens {
        for environment in ENVIRONMENTS {
            for action in ACTIONS {
                let expected = allowed(name, environment, action);
                let over_graphql = graphql_try(&world, token, environment, action).await;
                let over_rest = rest_try(&world, token, environment, action).await;
                let over_mcp = mcp_try(&world, token, environment, action).await;
                if over_graphql != expected || over_rest != expected || over_mcp != expected {
                    mismatches.push(format!(
                        "{name} {environment} {action:?}: expected {expected}, GraphQL {over_graphql}, REST {over_rest}, MCP {over_mcp}"
                    ));
                }
            }
        }
    }
    assert!(mismatches.is_empty(), "the permission table does not hold:\n{}", mismatches.join("\n"));
}

#[tokio::test]
async fn roles_revocation_and_missing_credentials() {
    let world = World::new().await;
    let server = &world.server;
    // A principal without the cook role cannot answer a cook's intervention.
    let stranger = server.create_key("stranger", "waiter", "production");
    let id = server.start_pbj(Some(&world.ops), "kitchen-production").await;
    let intervention =
        server.pending_intervention(Some(&world.ops), &id).await["id"].as_str().expect("intervention id").to_owned();
    let body = server
        .graphql_as(
            &stranger,
            "mutation($id: ID!, $i: ID!) { respondToIntervention(input: {executionId: $id, interventionId: $i, response: {jelly_flavor: \"grape\"}}) { id } }",
            json!({"id": id, "i": intervention}),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN", "{body}");
    // The same refusal over REST (403) and MCP (a FORBIDDEN tool error).
    let response = server
        .client
        .post(format!("{}/api/v1/executions/{id}/interventions/{intervention}", server.base))
        .bearer_auth(&stranger)
        .json(&json!({"response": {"jelly_flavor": "grape"}}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 403);
    for revision in mcp_client::REVISIONS {
        let session = mcp_client::connect(&server.base, revision, Some(&stranger)).await.expect("connects");
        let refused = mcp_client::call(
            &session,
            "intervene_execution",
            json!({"executionId": id, "interventionId": intervention, "response": {"jelly_flavor": "grape"}}),
        )
        .await;
        assert_eq!(mcp_client::failure(&refused)["code"], "FORBIDDEN", "{revision}");
        session.cancel().await.expect("closed");
    }
    let mine = server.graphql_as(&stranger, "{ interventions(filter: {mine: true}) { id } }", json!({})).await;
    assert_eq!(mine["data"]["interventions"], json!([]), "a waiter has nothing to answer");
    let cook = &world.tokens[0].1;
    let mine = server.graphql_as(cook, "{ interventions(filter: {mine: true}) { id } }", json!({})).await;
    assert!(
        mine["data"]["interventions"]
            .as_array()
            .expect("list")
            .iter()
            .any(|found| found["id"] == intervention.as_str())
    );

    // The actor in history is the key's principal, never its secret.
    let body = server
        .graphql_as(cook, "mutation($id: ID!, $i: ID!) { respondToIntervention(input: {executionId: $id, interventionId: $i, response: {jelly_flavor: \"grape\"}}) { id } }", json!({"id": id, "i": intervention}))
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    let history = server
        .graphql_as(&world.ops, "query($id: ID!) { execution(id: $id) { history { actor type } } }", json!({"id": id}))
        .await;
    let actors: Vec<&str> = history["data"]["execution"]["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|event| event["actor"].as_str())
        .collect();
    assert!(actors.contains(&"key:prod"), "{actors:?}");
    assert!(!history.to_string().contains(cook.as_str()));

    // Revoked keys are refused at once; requests without credentials too, now that keys exist.
    let listed = server.keys(&["list"]);
    let stranger_id = listed
        .lines()
        .find(|line| line.contains("stranger"))
        .and_then(|line| line.split('\t').next())
        .expect("listed")
        .to_owned();
    assert!(!listed.contains("orgata_"), "listing never shows secrets");
    let revoked = server
        .graphql_as(
            &world.ops,
            "mutation($id: String!) { revokeApiKey(id: $id) { revokedAt } }",
            json!({"id": stranger_id}),
        )
        .await;
    assert!(revoked["data"]["revokeApiKey"]["revokedAt"].is_string(), "{revoked}");
    let refused = server.graphql_as(&stranger, "{ me { id } }", json!({})).await;
    assert_eq!(refused["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    let response = server
        .client
        .get(format!("{}/api/v1/runtimes", server.base))
        .bearer_auth(&stranger)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 401);
    let anonymous = server
        .client
        .post(format!("{}/graphql", server.base))
        .json(&json!({"query": "{ me { id } }"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(anonymous.status(), 401);
    let wrong = server.graphql_as("orgata_nope_secret", "{ me { id } }", json!({})).await;
    assert_eq!(wrong["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");

    // Keys through GraphQL: only admins of every granted environment may create them.
    let created = server
        .graphql_as(
            &world.ops,
            "mutation { createApiKey(input: {name: \"bot\", grants: [\"staging:read\"]}) { key { id grants } token } }",
            json!({}),
        )
        .await;
    let token = created["data"]["createApiKey"]["token"].as_str().expect("token");
    assert_eq!(server.graphql_as(token, "{ me { id grants } }", json!({})).await["data"]["me"]["id"], "key:bot");
    let denied = server
        .graphql_as(
            cook,
            "mutation { createApiKey(input: {name: \"x\", grants: [\"production:admin\"]}) { token } }",
            json!({}),
        )
        .await;
    assert_eq!(denied["errors"][0]["extensions"]["code"], "FORBIDDEN");
}

fn jwt(secret: &str, claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("signed")
}

#[tokio::test]
async fn jwts_are_verified() {
    let server =
        TestServer::start_with(|config| config.jwt_hs256_secret = Some("test-secret-of-enough-length".into())).await;
    let now = chrono::Utc::now().timestamp();
    let good = jwt(
        "test-secret-of-enough-length",
        json!({"sub": "alice", "roles": ["cook"], "grants": ["development"], "exp": now + 600}),
    );
    let me = server.graphql_as(&good, "{ me { id roles grants } }", json!({})).await;
    assert_eq!(me["data"]["me"]["id"], "jwt:alice", "{me}");
    let expired =
        jwt("test-secret-of-enough-length", json!({"sub": "alice", "grants": ["development"], "exp": now - 600}));
    let refused = server.graphql_as(&expired, "{ me { id } }", json!({})).await;
    assert_eq!(refused["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    assert!(refused["errors"][0]["message"].as_str().unwrap_or_default().contains("expired"));
    let forged = jwt(
        "another-secret-entirely-here",
        json!({"sub": "mallory", "grants": ["production:admin"], "exp": now + 600}),
    );
    let refused = server.graphql_as(&forged, "{ me { id } }", json!({})).await;
    assert!(refused["errors"][0]["message"].as_str().unwrap_or_default().contains("signature"), "{refused}");
    // With JWTs configured, anonymous loopback requests are refused too.
    let anonymous = server.client.get(format!("{}/api/v1/runtimes", server.base)).send().await.expect("sent");
    assert_eq!(anonymous.status(), 401);
    // A production-only JWT cannot read development.
    let production =
        jwt("test-secret-of-enough-length", json!({"sub": "pat", "grants": ["production"], "exp": now + 600}));
    let body = server.graphql_as(&production, "{ runtime(id: \"kitchen-v1\") { id } }", json!({})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");
}

#[tokio::test]
async fn no_secret_reaches_the_logs() {
    let directory = tempfile::tempdir().expect("directory");
    let database = orgata::store::sqlite_url(&directory.path().join("orgata.db"));
    let created = std::process::Command::new(env!("CARGO_BIN_EXE_orgata"))
        .args(["keys", "create", "--name", "ops", "--grant", ADMIN_GRANTS, "--database-url", &database])
        .output()
        .expect("keys create");
    let token = String::from_utf8_lossy(&created.stdout)
        .lines()
        .find(|line| line.starts_with("orgata_"))
        .expect("token")
        .to_owned();
    let secret = token.rsplit('_').next().expect("secret part").to_owned();
    let jwt_secret = "jwt-secret-that-must-not-leak";
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_orgata"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &database, "--log-format", "json"])
        .args(["--examples-dir", concat!(env!("CARGO_MANIFEST_DIR"), "/examples")])
        .env("ORGATA_JWT_HS256_SECRET", jwt_secret)
        .env("ORGATA_MODEL_API_KEY", "sk-model-key-that-must-not-leak")
        .env("RUST_LOG", "debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("server starts");
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut log = String::new();
    let mut address = None;
    while address.is_none() {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("in time")
            .expect("read")
            .expect("a line");
        if let Some(found) = line.split("\"address\":\"").nth(1).and_then(|rest| rest.split('"').next()) {
            address = Some(found.to_owned());
        }
        log.push_str(&line);
    }
    let base = format!("http://{}", address.expect("address"));
    let client = reqwest::Client::new();
    for bearer in [token.as_str(), "orgata_bad_guess", "not-a-token"] {
        let _ = client
            .post(format!("{base}/graphql"))
            .bearer_auth(bearer)
            .json(&json!({"query": "{ me { id } }"}))
            .send()
            .await;
        let _ = client.get(format!("{base}/api/v1/runtimes")).bearer_auth(bearer).send().await;
    }
    let bad_jwt = jwt(jwt_secret, json!({"sub": "x", "exp": 1}));
    let _ = client
        .post(format!("{base}/graphql"))
        .bearer_auth(&bad_jwt)
        .json(&json!({"query": "{ me { id } }"}))
        .send()
        .await;
    child.start_kill().expect("kill");
    while let Ok(Ok(Some(line))) = tokio::time::timeout(Duration::from_secs(5), lines.next_line()).await {
        log.push_str(&line);
    }
    let mut errors = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        use tokio::io::AsyncReadExt;
        let _ = stderr.read_to_string(&mut errors).await;
    }
    log.push_str(&errors);
    assert!(log.contains("orgata is listening"), "the log was captured");
    for leaked in [secret.as_str(), jwt_secret, "sk-model-key-that-must-not-leak", bad_jwt.as_str()] {
        assert!(!log.contains(leaked), "a secret reached the logs: {leaked}");
    }
    // With the server stopped (SQLite belongs to one process), the CLI revokes the key.
    let _ = child.wait().await;
    let id = token.trim_start_matches("orgata_").split('_').next().expect("key id").to_owned();
    let revoked = std::process::Command::new(env!("CARGO_BIN_EXE_orgata"))
        .args(["keys", "revoke", &id, "--database-url", &database])
        .output()
        .expect("keys revoke");
    assert!(revoked.status.success(), "{}", String::from_utf8_lossy(&revoked.stderr));
    let listed = std::process::Command::new(env!("CARGO_BIN_EXE_orgata"))
        .args(["keys", "list", "--database-url", &database])
        .output()
        .expect("keys list");
    assert!(String::from_utf8_lossy(&listed.stdout).contains("revoked"), "{}", String::from_utf8_lossy(&listed.stdout));
}

#[tokio::test]
async fn rs256_jwts_are_verified_with_the_public_key() {
    let directory = tempfile::tempdir().expect("directory");
    let private = directory.path().join("private.pem");
    let public = directory.path().join("public.pem");
    let generated = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"])
        .arg(&private)
        .output()
        .expect("openssl runs");
    assert!(generated.status.success(), "{}", String::from_utf8_lossy(&generated.stderr));
    let extracted = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&public)
        .output()
        .expect("openssl runs");
    assert!(extracted.status.success());
    let public_path = public.clone();
    let server = TestServer::start_with(move |config| config.jwt_rs256_public_key_file = Some(public_path)).await;
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&std::fs::read(&private).expect("private key")).expect("RSA key");
    let claims = json!({"sub": "robin", "grants": ["development"], "exp": chrono::Utc::now().timestamp() + 600});
    let token = jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256), &claims, &key)
        .expect("signed");
    let me = server.graphql_as(&token, "{ me { id } }", json!({})).await;
    assert_eq!(me["data"]["me"]["id"], "jwt:robin", "{me}");
    // An HS256 token is refused by an RS256 server, whatever its secret.
    let forged =
        jwt("guess", json!({"sub": "mallory", "grants": ["development"], "exp": chrono::Utc::now().timestamp() + 600}));
    let refused = server.graphql_as(&forged, "{ me { id } }", json!({})).await;
    assert_eq!(refused["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
}

#[tokio::test]
async fn cors_allows_only_the_configured_origins() {
    let server =
        TestServer::start_with(|config| config.cors_allow_origin = vec!["https://app.example.test".to_owned()]).await;
    let preflight = |origin: &'static str| {
        server
            .client
            .request(reqwest::Method::OPTIONS, format!("{}/graphql", server.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type")
            .send()
    };
    let allowed = preflight("https://app.example.test").await.expect("sent");
    assert_eq!(
        allowed.headers().get("access-control-allow-origin").and_then(|value| value.to_str().ok()),
        Some("https://app.example.test")
    );
    let other = preflight("https://evil.example.test").await.expect("sent");
    assert!(other.headers().get("access-control-allow-origin").is_none(), "no CORS grant for other origins");
}
